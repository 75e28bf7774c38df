/* irc_model.h: the C ABI of an irc package's model.so (ABI version 1).
 *
 * A package (irc.export / `irc export`) is a directory; its model.so holds
 * the compiled kernels and, where the model needs no torch at run time, a
 * native host schedule behind these functions. Link or dlopen model.so, then:
 *
 *   irc_model *m;
 *   if (irc_model_open("model.ircpkg", &m) != IRC_OK) { puts(irc_last_error()); ... }
 *   irc_tensor_info info; irc_model_input(m, 0, &info);      // name, dtype, shape
 *   const void *ins[] = {x};  void *outs[] = {y};              // caller-owned, contiguous
 *   irc_model_run(m, ins, outs);
 *   irc_model_close(m);
 *
 * Buffers are dense row-major of exactly the described dtype and shape. A
 * model may be run from one thread at a time (runs share the model's arena);
 * open it once per thread for concurrency. Every function returns an
 * irc_status; on failure irc_last_error() (per thread) says what and why.
 * irc_model_open checks the package's format version, that the package
 * directory and weights file belong to this user and are not writable by
 * group or others, and the weights file's size and sha256 (built into the
 * library at export); the weights are memory-mapped, never copied.
 * Parallel kernels use the process's OpenMP runtime when one is loaded
 * (link the program with -fopenmp), else run on the calling thread.
 */
#ifndef IRC_MODEL_H
#define IRC_MODEL_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

#define IRC_ABI_VERSION 1

typedef struct irc_model irc_model;

typedef enum irc_status {
  IRC_OK = 0,
  IRC_ERR_IO = 1,        /* a package file is missing or unreadable */
  IRC_ERR_FORMAT = 2,    /* not a package of this format version, or a corrupt file */
  IRC_ERR_SECURITY = 3,  /* a file another user could have written */
  IRC_ERR_ARGUMENT = 4,  /* a bad index or null pointer */
  IRC_ERR_MEMORY = 5     /* out of memory */
} irc_status;

typedef enum irc_dtype {
  IRC_FLOAT32 = 0, IRC_FLOAT64 = 1, IRC_FLOAT16 = 2, IRC_BFLOAT16 = 3, IRC_INT64 = 4,
  IRC_INT32 = 5, IRC_INT16 = 6, IRC_INT8 = 7, IRC_UINT8 = 8, IRC_BOOL = 9
} irc_dtype;

typedef struct irc_tensor_info {
  const char *name;      /* the model's argument / output name */
  irc_dtype dtype;
  int32_t rank;
  const int64_t *shape;  /* rank entries, owned by the library */
  int64_t nbytes;        /* bytes of a dense buffer of this dtype and shape */
} irc_tensor_info;

int irc_abi_version(void);
irc_status irc_model_open(const char *package_dir, irc_model **out);
int32_t irc_model_num_inputs(const irc_model *model);
int32_t irc_model_num_outputs(const irc_model *model);
irc_status irc_model_input(const irc_model *model, int32_t index, irc_tensor_info *info);
irc_status irc_model_output(const irc_model *model, int32_t index, irc_tensor_info *info);
irc_status irc_model_run(irc_model *model, const void *const *inputs, void *const *outputs);
void irc_model_close(irc_model *model);
const char *irc_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
