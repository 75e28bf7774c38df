/* run_model: load an irc package from C and run it; no Python anywhere.
 *
 *   cc -O2 -I MODEL.ircpkg -o run_model examples/c_runner/run_model.c -ldl [-fopenmp]
 *   ./run_model MODEL.ircpkg DIR [REPEAT]
 *
 * Reads DIR/input_<i>.bin (each input's raw bytes, dense, in the dtype and
 * shape the package describes), runs the model, writes DIR/output_<i>.bin,
 * and prints the median time of REPEAT further runs (default 0).
 * Builds against the irc_model.h shipped in the package, and dlopens its
 * model.so (link with -fopenmp to let parallel kernels use OpenMP).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "irc_model.h"

#define LOAD(name) \
  name##_t name = (name##_t)dlsym(lib, #name); \
  if (!name) { fprintf(stderr, "%s: no symbol " #name "\n", so); return 2; }

typedef irc_status (*irc_model_open_t)(const char *, irc_model **);
typedef int32_t (*irc_model_num_inputs_t)(const irc_model *);
typedef int32_t (*irc_model_num_outputs_t)(const irc_model *);
typedef irc_status (*irc_model_input_t)(const irc_model *, int32_t, irc_tensor_info *);
typedef irc_status (*irc_model_output_t)(const irc_model *, int32_t, irc_tensor_info *);
typedef irc_status (*irc_model_run_t)(irc_model *, const void *const *, void *const *);
typedef void (*irc_model_close_t)(irc_model *);
typedef const char *(*irc_last_error_t)(void);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.ircpkg DIR [REPEAT]\n", argv[0]);
    return 2;
  }
  const char *pkg = argv[1], *dir = argv[2];
  int repeat = argc > 3 ? atoi(argv[3]) : 0;
  char so[4096], path[4096];
  snprintf(so, sizeof so, "%s/model.so", pkg);
  void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 2; }
  LOAD(irc_model_open) LOAD(irc_model_num_inputs) LOAD(irc_model_num_outputs)
  LOAD(irc_model_input) LOAD(irc_model_output) LOAD(irc_model_run) LOAD(irc_model_close)
  LOAD(irc_last_error)
  irc_model *model;
  if (irc_model_open(pkg, &model) != IRC_OK) {
    fprintf(stderr, "irc_model_open: %s\n", irc_last_error());
    return 1;
  }
  int n_in = irc_model_num_inputs(model), n_out = irc_model_num_outputs(model);
  void **ins = calloc(n_in + 1, sizeof *ins), **outs = calloc(n_out + 1, sizeof *outs);
  irc_tensor_info info;
  for (int i = 0; i < n_in; i++) {
    irc_model_input(model, i, &info);
    ins[i] = malloc(info.nbytes + 1);
    snprintf(path, sizeof path, "%s/input_%d.bin", dir, i);
    FILE *f = fopen(path, "rb");
    if (!f || fread(ins[i], 1, info.nbytes, f) != (size_t)info.nbytes) {
      fprintf(stderr, "%s: cannot read %lld bytes for input %s\n", path,
              (long long)info.nbytes, info.name);
      return 1;
    }
    fclose(f);
  }
  for (int i = 0; i < n_out; i++) {
    irc_model_output(model, i, &info);
    outs[i] = malloc(info.nbytes + 1);
  }
  if (irc_model_run(model, (const void *const *)ins, outs) != IRC_OK) {
    fprintf(stderr, "irc_model_run: %s\n", irc_last_error());
    return 1;
  }
  for (int i = 0; i < n_out; i++) {
    irc_model_output(model, i, &info);
    snprintf(path, sizeof path, "%s/output_%d.bin", dir, i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(outs[i], 1, info.nbytes, f) != (size_t)info.nbytes) {
      fprintf(stderr, "%s: cannot write output %s\n", path, info.name);
      return 1;
    }
    fclose(f);
  }
  if (repeat > 0) {
    double *t = malloc(sizeof(double) * repeat);
    for (int r = 0; r < repeat; r++) {
      double t0 = now();
      irc_model_run(model, (const void *const *)ins, outs);
      t[r] = now() - t0;
    }
    qsort(t, repeat, sizeof(double), cmp);
    printf("median %.3f ms over %d runs\n", t[repeat / 2] * 1e3, repeat);
  }
  irc_model_close(model);
  return 0;
}
