"""The native host schedule: ``@main`` as C code behind the package's C ABI.

:func:`native_sources` turns a package's schedule (see
:mod:`irc.backends.llvm.package`) into one C file that ``cc`` compiles into
``model.so`` beside the kernels; ``native_abi.h`` (shipped in the package as
``irc_model.h``) is its interface. The schedule is static, so everything is
decided here and printed as constants: every value's place (caller buffer,
arena offset, weights-file offset, a buffer of its own, or a view: base plus
static strides, worked out on meta tensors), every loop bound and stride.
``irc_model_run`` is then straight-line code: kernel calls (parallel ones
through their ``.omp`` entry when an OpenMP runtime is loaded) and library
calls, with no allocation and no Python.

Library calls are irc's own C (compiled ``-O3 -march=native`` with the
kernels): a strided matmul (float32/64, int32/64; the inner loop over
contiguous memory, vectorised by the C compiler), attention (one query row
at a time, scores in a scratch row), embedding / index_select / concat as
copies, gather, direct 1-d/2-d convolution (weight reordered once at open),
max/average/adaptive pooling, and the quantized matmul's generated kernel.
This is slower than MKL and oneDNN (``bench/bench_export.py`` measures it);
no third library is needed. ``graph.aten_call`` (torch's own op) and
convolutions/pooling of other ranks or dtypes have no native version: a
package whose schedule needs one
has no C ABI (``manifest["c_abi"]["reason"]`` names the op and its source
line), and ``irc.export(..., c_abi=True)`` makes that an error. The Python
loader runs such packages (through torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from irc.errors import IrcError
from irc.openmp import OPENMP_MIN_WORK, min_iterations

HEADER_TEXT = (Path(__file__).with_name("native_abi.h")).read_text()

DTYPE_CODES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3, "int64": 4,
               "int32": 5, "int16": 6, "int8": 7, "uint8": 8, "bool": 9}
C_TYPES = {"float32": "float", "float64": "double", "int64": "int64_t", "int32": "int32_t",
           "int16": "int16_t", "int8": "int8_t", "uint8": "uint8_t", "bool": "uint8_t",
           "float16": "uint16_t", "bfloat16": "uint16_t"}
NATIVE_OPS = ("launch", "view", "graph.matmul", "graph.attention", "graph.embedding",
              "graph.index_select", "graph.gather", "graph.concat", "graph.quantized_matmul",
              "graph.conv", "graph.conv_epilogue", "graph.max_pool", "graph.avg_pool", "graph.adaptive_avg_pool")


class NoNativeSchedule(IrcError):
    """The schedule needs a step that has no native version (op and source line)."""


RUNTIME_C = r"""
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static __thread char irc_error[1024];
const char *irc_last_error(void) { return irc_error; }
int irc_abi_version(void) { return IRC_ABI_VERSION; }
static irc_status fail(irc_status code, const char *fmt, ...) {
  va_list ap; va_start(ap, fmt); vsnprintf(irc_error, sizeof irc_error, fmt, ap); va_end(ap);
  return code;
}
void irc_set_openmp(void *parallel, void *thread_num, void *num_threads);

/* vectorise a dot product's sum (reassociated, as the kernels' reductions are) */
#define IRC_SIMD _Pragma("omp simd reduction(+:acc)")
/* C[m, n] = sum_k A[m, k] B[k, n], strided A and B, C dense [M, N]; one per dtype. */
#define IRC_MM(NAME, T)                                                                    \
static void NAME(const T *A, int64_t sam, int64_t sak, const T *B, int64_t sbk,           \
                 int64_t sbn, T *C, int64_t M, int64_t N, int64_t K) {                     \
  if (sbk == 1 && sbn != 1) { /* B columns contiguous: dot products */                    \
    for (int64_t m = 0; m < M; m++)                                                        \
      for (int64_t n = 0; n < N; n++) {                                                    \
        const T *a = A + m * sam, *b = B + n * sbn;                                        \
        T acc = 0;                                                                         \
        if (sak == 1) { IRC_SIMD for (int64_t k = 0; k < K; k++) acc += a[k] * b[k]; }     \
        else { for (int64_t k = 0; k < K; k++) acc += a[k * sak] * b[k]; }                 \
        C[m * N + n] = acc;                                                                \
      }                                                                                    \
    return;                                                                                \
  }                                                                                        \
  for (int64_t m = 0; m < M; m++) {                                                        \
    T *c = C + m * N;                                                                      \
    for (int64_t n = 0; n < N; n++) c[n] = 0;                                              \
    for (int64_t k = 0; k < K; k++) {                                                      \
      T a = A[m * sam + k * sak];                                                          \
      const T *b = B + k * sbk;                                                            \
      if (sbn == 1) { for (int64_t n = 0; n < N; n++) c[n] += a * b[n]; }                  \
      else { for (int64_t n = 0; n < N; n++) c[n] += a * b[n * sbn]; }                     \
    }                                                                                      \
  }                                                                                        \
}
IRC_MM(irc_mm, float)
IRC_MM(irc_mm_f64, double)
IRC_MM(irc_mm_i64, int64_t)
IRC_MM(irc_mm_i32, int32_t)

/* dst (dense, rank dims) <- src (strided), element size es */
static void irc_copy(char *dst, const char *src, const int64_t *shape, const int64_t *sstride,
                     int rank, int64_t es) {
  if (rank == 0) { memcpy(dst, src, es); return; }
  int64_t inner = 1;
  for (int d = 1; d < rank; d++) inner *= shape[d];
  for (int64_t i = 0; i < shape[0]; i++)
    irc_copy(dst + i * inner * es, src + i * sstride[0] * es, shape + 1, sstride + 1, rank - 1, es);
}

/* dst (strided dstride) <- src (dense) */
static void irc_place(char *dst, const int64_t *dstride, const char *src, const int64_t *shape,
                      int rank, int64_t es) {
  if (rank == 0) { memcpy(dst, src, es); return; }
  int64_t inner = 1;
  for (int d = 1; d < rank; d++) inner *= shape[d];
  for (int64_t i = 0; i < shape[0]; i++)
    irc_place(dst + i * dstride[0] * es, dstride + 1, src + i * inner * es, shape + 1, rank - 1, es);
}

/* one attention row: out[Ev] = softmax(q . k_s * scale + mask_s) v_s */
static void irc_attention_row(const float *q, int64_t sqe, const float *k, int64_t sks,
                              int64_t ske, const float *v, int64_t svs, int64_t sve,
                              const char *mask, int mask_kind, int64_t sms, float *out,
                              int64_t S, int64_t E, int64_t Ev, float scale, int64_t last,
                              float *scores) {
  float mx = -INFINITY;
  for (int64_t s = 0; s < S; s++) {
    float acc = -INFINITY;
    int keep = s <= last;
    if (keep && mask_kind == 1) keep = ((const uint8_t *)mask)[s * sms] != 0;
    if (keep) {
      acc = 0.f;
      const float *kr = k + s * sks;
      if (sqe == 1 && ske == 1) { IRC_SIMD for (int64_t e = 0; e < E; e++) acc += q[e] * kr[e]; }
      else { for (int64_t e = 0; e < E; e++) acc += q[e * sqe] * kr[e * ske]; }
      acc *= scale;
      if (mask_kind == 2) acc += ((const float *)mask)[s * sms];
    }
    scores[s] = acc;
    if (acc > mx) mx = acc;
  }
  for (int64_t e = 0; e < Ev; e++) out[e] = 0.f;
  if (mx == -INFINITY) return;  /* no key left: zeros, as torch */
  float sum = 0.f;
  for (int64_t s = 0; s < S; s++) { float p = scores[s] == -INFINITY ? 0.f : expf(scores[s] - mx); scores[s] = p; sum += p; }
  for (int64_t s = 0; s < S; s++) {
    float p = scores[s] / sum;
    if (p == 0.f) continue;
    for (int64_t e = 0; e < Ev; e++) out[e] += p * v[s * svs + e * sve];
  }
}

/* 2-d convolution over strided x (n, h, w, c) into strided y (n, h, w, o); the
 * weight reordered to [O][KH][KW][C/G] (irc_conv_weight) so both inner reads
 * are contiguous in c for channels-last data. */
static void irc_conv_weight(const float *w, float *r, int64_t O, int64_t CG, int64_t KH,
                            int64_t KW) {
  for (int64_t o = 0; o < O; o++)
    for (int64_t c = 0; c < CG; c++)
      for (int64_t kh = 0; kh < KH; kh++)
        for (int64_t kw = 0; kw < KW; kw++)
          r[((o * KH + kh) * KW + kw) * CG + c] = w[((o * CG + c) * KH + kh) * KW + kw];
}
static void irc_conv2d(const float *x, const int64_t *xs, const float *w, const float *b,
                       float *y, const int64_t *ys, int64_t N, int64_t H, int64_t W, int64_t C,
                       int64_t O, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                       int64_t pw, int64_t dh, int64_t dw, int64_t G, int64_t Ho, int64_t Wo) {
  int64_t cg = C / G, og = O / G;
  for (int64_t n = 0; n < N; n++)
    for (int64_t ho = 0; ho < Ho; ho++)
      for (int64_t wo = 0; wo < Wo; wo++)
        for (int64_t o = 0; o < O; o++) {
          int64_t g = o / og;
          float acc = b ? b[o] : 0.f;
          for (int64_t kh = 0; kh < KH; kh++) {
            int64_t hi = ho * sh - ph + kh * dh;
            if (hi < 0 || hi >= H) continue;
            for (int64_t kw = 0; kw < KW; kw++) {
              int64_t wi = wo * sw - pw + kw * dw;
              if (wi < 0 || wi >= W) continue;
              const float *xp = x + n * xs[0] + hi * xs[1] + wi * xs[2] + g * cg * xs[3];
              const float *wp = w + ((o * KH + kh) * KW + kw) * cg;
              if (xs[3] == 1) { IRC_SIMD for (int64_t c = 0; c < cg; c++) acc += xp[c] * wp[c]; }
              else { for (int64_t c = 0; c < cg; c++) acc += xp[c * xs[3]] * wp[c]; }
            }
          }
          y[n * ys[0] + ho * ys[1] + wo * ys[2] + o * ys[3]] = acc;
        }
}

/* 2-d max (kind 0) or average (kind 1) pooling, torch's window and divisor rules */
static void irc_pool2d(const float *x, const int64_t *xs, float *y, const int64_t *ys, int kind,
                       int64_t N, int64_t H, int64_t W, int64_t C, int64_t KH, int64_t KW,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                       int64_t Ho, int64_t Wo, int include_pad, int64_t divisor) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t ho = 0; ho < Ho; ho++)
      for (int64_t wo = 0; wo < Wo; wo++)
        for (int64_t c = 0; c < C; c++) {
          const float *xp = x + n * xs[0] + c * xs[3];
          float acc = kind == 0 ? -INFINITY : 0.f;
          int64_t h0 = ho * sh - ph, w0 = wo * sw - pw;
          if (kind == 0) {
            for (int64_t kh = 0; kh < KH; kh++) {
              int64_t hi = h0 + kh * dh;
              if (hi < 0 || hi >= H) continue;
              for (int64_t kw = 0; kw < KW; kw++) {
                int64_t wi = w0 + kw * dw;
                if (wi < 0 || wi >= W) continue;
                float v = xp[hi * xs[1] + wi * xs[2]];
                if (v > acc || v != v) acc = v;
              }
            }
          } else {
            int64_t h1 = h0 + KH < H + ph ? h0 + KH : H + ph, w1 = w0 + KW < W + pw ? w0 + KW : W + pw;
            int64_t size = (h1 - h0) * (w1 - w0);
            int64_t a0 = h0 > 0 ? h0 : 0, b0 = w0 > 0 ? w0 : 0;
            int64_t a1 = h1 < H ? h1 : H, b1 = w1 < W ? w1 : W;
            for (int64_t hi = a0; hi < a1; hi++)
              for (int64_t wi = b0; wi < b1; wi++) acc += xp[hi * xs[1] + wi * xs[2]];
            int64_t div = divisor ? divisor : (include_pad ? size : (a1 - a0) * (b1 - b0));
            acc /= (float)div;
          }
          y[n * ys[0] + ho * ys[1] + wo * ys[2] + c * ys[3]] = acc;
        }
}

/* adaptive average pooling of x [R, H, W] (dense) to y [R, Ho, Wo] */
static void irc_adaptive2d(const float *x, float *y, int64_t R, int64_t H, int64_t W,
                           int64_t Ho, int64_t Wo) {
  for (int64_t r = 0; r < R; r++)
    for (int64_t i = 0; i < Ho; i++) {
      int64_t h0 = (i * H) / Ho, h1 = ((i + 1) * H + Ho - 1) / Ho;
      for (int64_t j = 0; j < Wo; j++) {
        int64_t w0 = (j * W) / Wo, w1 = ((j + 1) * W + Wo - 1) / Wo;
        float acc = 0.f;
        for (int64_t h = h0; h < h1; h++)
          for (int64_t w = w0; w < w1; w++) acc += x[(r * H + h) * W + w];
        y[(r * Ho + i) * Wo + j] = acc / (float)((h1 - h0) * (w1 - w0));
      }
    }
}

/* SHA-256 (FIPS 180-4), to check the weights file against the digest built in */
static const uint32_t irc_k256[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
#define IRC_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void irc_sha256_block(uint32_t *h, const unsigned char *p) {
  uint32_t w[64], a, b, c, d, e, f, g, hh;
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = IRC_ROR(w[i - 15], 7) ^ IRC_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = IRC_ROR(w[i - 2], 17) ^ IRC_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = hh + (IRC_ROR(e, 6) ^ IRC_ROR(e, 11) ^ IRC_ROR(e, 25)) + ((e & f) ^ (~e & g)) + irc_k256[i] + w[i];
    uint32_t t2 = (IRC_ROR(a, 2) ^ IRC_ROR(a, 13) ^ IRC_ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}
static void irc_sha256(const unsigned char *data, uint64_t n, char *hex) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
                   0x1f83d9ab, 0x5be0cd19};
  uint64_t i = 0;
  for (; i + 64 <= n; i += 64) irc_sha256_block(h, data + i);
  unsigned char tail[128] = {0};
  uint64_t rest = n - i, len = rest < 56 ? 64 : 128;
  memcpy(tail, data + i, rest);
  tail[rest] = 0x80;
  for (int j = 0; j < 8; j++) tail[len - 1 - j] = (unsigned char)((n * 8) >> (8 * j));
  irc_sha256_block(h, tail);
  if (len == 128) irc_sha256_block(h, tail + 64);
  for (int j = 0; j < 8; j++) sprintf(hex + 8 * j, "%08x", h[j]);
}

static irc_status check_private(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return fail(IRC_ERR_IO, "%s: %s", path, strerror(errno));
  if (st.st_uid != getuid())
    return fail(IRC_ERR_SECURITY, "%s: belongs to user id %d, not to you: irc refuses to load "
                "a package another user controls", path, (int)st.st_uid);
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return fail(IRC_ERR_SECURITY, "%s: writable by group or others (mode %o): irc refuses "
                "a package another user could have changed (chmod go-w if you trust it)",
                path, (unsigned)(st.st_mode & 07777));
  return IRC_OK;
}

typedef void (*irc_fn_t)(void);
static int irc_threads(void) {
  int (*max_threads)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
  void *parallel = dlsym(RTLD_DEFAULT, "GOMP_parallel");
  void *num = dlsym(RTLD_DEFAULT, "omp_get_thread_num");
  void *count = dlsym(RTLD_DEFAULT, "omp_get_num_threads");
  if (!max_threads || !parallel || !num || !count) return 1;
  irc_set_openmp(parallel, num, count);
  int n = max_threads();
  return n > 0 ? n : 1;
}
"""


def _contiguous(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= max(d, 1)
    return list(reversed(strides))


def _fail(step: Mapping, why: str) -> NoNativeSchedule:
    return NoNativeSchedule(f"the C ABI cannot run {step['op']} at {step.get('source', '?')}: {why}")


class _Writer:
    """Places every value, then prints the C of each step."""

    def __init__(self, schedule: Mapping, offsets: Mapping[str, tuple[int, int]] | None,
                 inputs: Sequence[Mapping], outputs: Sequence[Mapping]) -> None:
        self.s = schedule
        self.pointers = offsets is None  # weights by pointer (the JIT), not in a mapped file
        self.values = schedule["values"]
        self.offsets = offsets  # tensor name -> (byte offset in the weights file, bytes)
        self.inputs, self.outputs = inputs, outputs
        # slot -> (C expression of its base char*, element strides)
        self.where: dict[int, tuple[str, list[int]]] = {}
        self.own: list[int] = []  # slots with a buffer of their own
        self.lines: list[str] = []
        self.derived: list[str] = []
        self.scratch = 0  # floats of scratch space (attention scores)
        self.values_extra: dict[int, dict] = {}  # buffers of copies inside view chains
        # values fixed for the model's life (weights, constants, weight-derived)
        self.static: set[int] = {slot for _, slot in [*schedule["weights"], *schedule["constants"]]}
        for st in schedule["derived_steps"]:
            self.static.update(st["out"])
        self.derived_out: list[str] = []  # code run once at open, after the derived steps

    def value(self, slot: int) -> Mapping:
        return self.values_extra[slot] if slot < 0 else self.values[slot]

    def shape(self, slot: int) -> list[int]:
        return list(self.value(slot)["shape"])

    def dtype(self, slot: int) -> str:
        return self.value(slot)["dtype"]

    def nbytes(self, slot: int) -> int:
        return _numel(self.shape(slot)) * _element_size(self.dtype(slot))

    def item_bytes(self, slot: int) -> int:
        """Bytes per element as the copies count them (0 for an empty value)."""
        return self.nbytes(slot) // max(_numel(self.shape(slot)), 1)

    def place(self) -> None:
        for i, slot in enumerate(self.s["inputs"]):
            self.where[slot] = (f"(char *)in[{i}]", _contiguous(self.shape(slot)))
        for slot, offset in self.s["fixed"]:
            self.where[slot] = (f"(m->arena + {offset})", _contiguous(self.shape(slot)))
        for k, (name, slot) in enumerate(list(self.s["weights"]) + list(self.s["constants"])):
            base = f"m->w[{k}]" if self.offsets is None else f"(m->map + {self.offsets[name][0]})"
            self.where[slot] = (base, _contiguous(self.shape(slot)))

    def ptr(self, slot: int) -> str:
        if slot not in self.where:  # a value the runtime allocates: a buffer of its own
            self.where[slot] = (f"m->own[{len(self.own)}]", _contiguous(self.shape(slot)))
            self.own.append(slot)
        return self.where[slot][0]

    def strides(self, slot: int) -> list[int]:
        self.ptr(slot)
        return self.where[slot][1]

    def contiguous(self, slot: int) -> bool:
        return self.strides(slot) == _contiguous(self.shape(slot))

    def typed(self, slot: int) -> str:
        return f"(({C_TYPES[self.dtype(slot)]} *){self.ptr(slot)})"

    # -- steps ------------------------------------------------------------------------
    def step(self, st: Mapping, out: list[str]) -> None:
        op = st["op"]
        if op not in NATIVE_OPS:
            raise _fail(st, "no native implementation (it runs through torch in irc.load)")
        getattr(self, "_" + op.removeprefix("graph."))(st, out)

    def _launch(self, st: Mapping, out: list[str]) -> None:
        args = ", ".join([self.dense(v, out) for v in st["in"]] + [self.ptr(v) for v in st["out"]])
        sym = _c_name(st["kernel"])
        if not st["parallel"]:
            out.append(f"  {sym}({args});")
            return
        trip = int(st["trip"])
        largest = max((_numel(self.shape(v)) for v in st["out"]), default=1)
        most = trip // min_iterations(trip, largest, OPENMP_MIN_WORK)
        out.append(f"  {{ int64_t c = m->threads < {most} ? m->threads : {most};\n"
                   f"    if (c > 1) {sym}_omp({args}, 0, {trip}, (int32_t)c); "
                   f"else {sym}({args}, 0, {trip}); }}")

    def _view(self, st: Mapping, out: list[str]) -> None:
        src, dst = st["in"][0], st["out"][0]
        base, strides = self.ptr(src), self.strides(src)
        t = torch.empty_strided(self.shape(src), strides, device="meta")
        for kind, *args in st["steps"]:
            if kind == "permute":
                t = t.permute(args[0])
            elif kind == "reshape":
                if not _viewable(t, args[0]):  # torch's reshape copies here: so do we
                    base, t = self._materialize(t, base, self.dtype(src), out), \
                        torch.empty(list(t.shape), device="meta")
                t = t.view(args[0])
            elif kind == "expand":
                t = t.expand(args[0])
            else:
                dim, start, end, step = args
                t = t[(slice(None),) * dim + (slice(start, end, step),)]
        es = _element_size(self.dtype(src))
        self.where[dst] = (f"({base} + {t.storage_offset() * es})", list(t.stride()))

    def _materialize(self, t: torch.Tensor, base: str, dtype: str, out: list[str]) -> str:
        """C copying the strided meta view ``t`` of ``base`` into a dense buffer of its
        own; returns that buffer's C expression."""
        es = _element_size(dtype)
        dst = self.buffer(dtype, list(t.shape))
        out.append(_copy_to_dense(dst, f"{base} + {t.storage_offset() * es}", list(t.shape),
                                  list(t.stride()), es))
        return dst

    def _nhwc(self, slot: int, channels_last: bool) -> tuple[list[int], list[int]]:
        """(N, H, W, C) sizes and element strides of a 1-d or 2-d conv/pool operand."""
        shape, strides = self.shape(slot), self.strides(slot)
        if len(shape) == 3:  # 1-d as 2-d with H = 1
            if channels_last:
                (n, length, c), (sn, sl, sc) = shape, strides
            else:
                (n, c, length), (sn, sc, sl) = shape, strides
            return [n, 1, length, c], [sn, 0, sl, sc]
        if len(shape) != 4:
            raise NoNativeSchedule(f"a {len(shape) - 2}-d convolution or pooling")
        if channels_last:
            return shape, strides
        (n, c, h, w), (sn, sc, sh, sw) = shape, strides
        return [n, h, w, c], [sn, sh, sw, sc]

    def _window_operands(self, st: Mapping, slots: Sequence[int], not_float32: str
                         ) -> tuple[list[int], list[int], list[int], list[int]]:
        """A convolution's or pooling's input (``slots[0]``) and result
        (``slots[-1]``) as (N, H, W, C) sizes and element strides each (see
        :meth:`_nhwc`); every slot must be float32 (else ``not_float32``)."""
        if not all(self.dtype(v) == "float32" for v in slots):
            raise _fail(st, not_float32)
        cl = bool(st["props"].get("channels_last"))
        try:
            x, xs = self._nhwc(slots[0], cl)
            r, rs = self._nhwc(slots[-1], cl)
        except NoNativeSchedule as err:
            raise _fail(st, str(err)) from None
        return x, xs, r, rs

    def _conv(self, st: Mapping, out: list[str]) -> None:
        p, ins, r = st["props"], st["in"], st["out"][0]
        (n, h, w, c), xs, (_, ho, wo, o), ys = self._window_operands(
            st, [*ins, r], "only float32 convolutions are native")
        ws = self.shape(ins[1])
        kh, kw = (ws[2], ws[3]) if len(ws) == 4 else (1, ws[2])
        _, stride, pad, dil = _as_2d(len(p["stride"]) == 1, [], p["stride"], p["padding"],
                                     p["dilation"])
        groups = int(p["groups"])
        wd = self.dense(ins[1], out)
        reordered = self.buffer("float32", [o, c // groups, kh, kw])
        bias = self.dense(ins[2], out) if len(ins) > 2 else "0"
        target = self.derived_out if ins[1] in self.static else out
        target.append(f"  irc_conv_weight((const float *){wd}, (float *){reordered}, {o}, "
                      f"{c // groups}, {kh}, {kw});")
        out.append(f"  {{ static const int64_t xs[] = {{{_list(xs)}}}, ys[] = {{{_list(ys)}}};\n"
                   f"    irc_conv2d((const float *){self.ptr(ins[0])}, xs, (const float *){reordered}, "
                   f"(const float *){bias}, (float *){self.ptr(r)}, ys, {n}, {h}, {w}, {c}, {o}, "
                   f"{kh}, {kw}, {stride[0]}, {stride[1]}, {pad[0]}, {pad[1]}, {dil[0]}, {dil[1]}, "
                   f"{groups}, {ho}, {wo}); }}")

    def _conv_epilogue(self, st: Mapping, out: list[str]) -> None:
        """The convolution into the result, then ``unary(. + other)`` in place."""
        p, ins, r = st["props"], list(st["in"]), st["out"][0]
        has_bias, has_other = bool(p["has_bias"]), bool(p["has_other"])
        conv_in = ins[:3] if has_bias else ins[:2]
        self._conv({**st, "in": conv_in, "props": {**p, "channels_last": True}}, out)
        shape, rs = self._nhwc(r, True)
        value = "v"
        terms = [f"i{d} * {rs[d]}" for d in range(4)]
        other = ""
        if has_other:
            o = ins[-1]
            if self.dtype(o) != "float32":
                raise _fail(st, "only float32 convolutions are native")
            _, os_ = self._nhwc(o, True)
            oterms = " + ".join(f"i{d} * {os_[d]}" for d in range(4))
            other = f" v += ((const float *){self.ptr(o)})[{oterms}];"
        scalars = [float(v) for v in p.get("unary_scalars") or []]  # JSON may hold ints
        unary = {"none": "", "relu": " v = v > 0.0f ? v : 0.0f;",
                 "hardtanh": (f" v = v < {scalars[0]!r}f ? {scalars[0]!r}f : v;"
                              f" v = v > {scalars[1]!r}f ? {scalars[1]!r}f : v;"
                              if len(scalars) == 2 else None),
                 "swish": " v = v / (1.0f + expf(-v));", "sigmoid": " v = 1.0f / (1.0f + expf(-v));",
                 "tanh": " v = tanhf(v);"}.get(p["unary"])
        if unary is None:
            raise _fail(st, f"the convolution epilogue {p['unary']!r}")
        loops = "".join(f"for (int64_t i{d} = 0; i{d} < {shape[d]}; i{d}++) " for d in range(4))
        out.append(f"  {{ float *y = (float *){self.ptr(r)};\n"
                   f"    {loops}{{ float *at = y + {' + '.join(terms)}; float {value} = *at;"
                   f"{other}{unary} *at = {value}; }} }}")

    def _pool(self, st: Mapping, out: list[str], kind: int) -> None:
        p, x, r = st["props"], st["in"][0], st["out"][0]
        (n, h, w, c), xs, (_, ho, wo, _), ys = self._window_operands(
            st, [x, r], "only float32 pooling is native")
        k = list(p["kernel"])
        k, stride, pad, dil = _as_2d(len(k) == 1, k, p["stride"], p["padding"],
                                     p.get("dilation") or [1] * len(k))
        include = 1 if p.get("count_include_pad", True) else 0
        out.append(f"  {{ static const int64_t xs[] = {{{_list(xs)}}}, ys[] = {{{_list(ys)}}};\n"
                   f"    irc_pool2d((const float *){self.ptr(x)}, xs, (float *){self.ptr(r)}, ys, "
                   f"{kind}, {n}, {h}, {w}, {c}, {k[0]}, {k[1]}, {stride[0]}, {stride[1]}, {pad[0]}, "
                   f"{pad[1]}, {dil[0]}, {dil[1]}, {ho}, {wo}, {include}, {int(p.get('divisor') or 0)}); }}")

    def _max_pool(self, st: Mapping, out: list[str]) -> None:
        self._pool(st, out, 0)

    def _avg_pool(self, st: Mapping, out: list[str]) -> None:
        self._pool(st, out, 1)

    def _adaptive_avg_pool(self, st: Mapping, out: list[str]) -> None:
        x, r = st["in"][0], st["out"][0]
        xsh, rsh = self.shape(x), self.shape(r)
        if self.dtype(x) != "float32" or len(xsh) not in (3, 4):
            raise _fail(st, "only float32 1-d/2-d adaptive pooling is native")
        nsp = 2 if len(xsh) == 4 else 1
        h, w = (xsh[-2], xsh[-1]) if nsp == 2 else (1, xsh[-1])
        ho, wo = (rsh[-2], rsh[-1]) if nsp == 2 else (1, rsh[-1])
        rows = _numel(xsh[:-nsp])
        out.append(f"  irc_adaptive2d((const float *){self.dense(x, out)}, (float *){self.ptr(r)}, "
                   f"{rows}, {h}, {w}, {ho}, {wo});")

    def buffer(self, dtype: str, shape: list[int]) -> str:
        """A buffer of its own (no schedule slot), for scratch such as a reordered weight."""
        slot = -1 - len(self.own)
        self.values_extra[slot] = {"dtype": dtype, "shape": shape}
        self.where[slot] = (f"m->own[{len(self.own)}]", _contiguous(shape))
        self.own.append(slot)
        return self.where[slot][0]

    def _gather(self, st: Mapping, out: list[str]) -> None:
        x, idx = st["in"]
        r = st["out"][0]
        rank = len(self.shape(r))
        dim = st["props"]["dim"] % rank
        es = self.item_bytes(x)
        out.append(
            f"  {{ static const int64_t sh[] = {{{_list(self.shape(r))}}}, xs[] = {{{_list(self.strides(x))}}},"
            f" is[] = {{{_list(self.strides(idx))}}};\n"
            f"    for (int64_t f = 0; f < {_numel(self.shape(r))}; f++) {{ int64_t q = f, xo = 0, io = 0, c;\n"
            f"      for (int d = {rank - 1}; d >= 0; d--) {{ c = q % sh[d]; q /= sh[d]; io += c * is[d];"
            f" if (d != {dim}) xo += c * xs[d]; }}\n"
            f"      xo += (int64_t){self.typed(idx)}[io] * xs[{dim}];\n"
            f"      memcpy({self.ptr(r)} + f * {es}, {self.ptr(x)} + xo * {es}, {es}); }} }}")

    def _matmul(self, st: Mapping, out: list[str]) -> None:
        a, b = st["in"]
        r = st["out"][0]
        mm = {"float32": "irc_mm", "float64": "irc_mm_f64", "int64": "irc_mm_i64",
              "int32": "irc_mm_i32"}.get(self.dtype(r))
        if mm is None or not (self.dtype(a) == self.dtype(b) == self.dtype(r)):
            raise _fail(st, f"a {self.dtype(a)} x {self.dtype(b)} -> {self.dtype(r)} matmul")
        rs = self.shape(r)
        M, N = rs[-2], rs[-1]
        ash, bsh = self.shape(a), self.shape(b)
        if len(ash) < 2 or len(bsh) < 2:
            raise _fail(st, "a matrix-vector product")
        K = ash[-1]
        batch = rs[:-2]
        sa = _broadcast_strides(ash[:-2], self.strides(a)[:-2], batch)
        sb = _broadcast_strides(bsh[:-2], self.strides(b)[:-2], batch)
        A, B, C = self.typed(a), self.typed(b), self.typed(r)
        (sam, sak), (sbk, sbn) = self.strides(a)[-2:], self.strides(b)[-2:]
        nb = _numel(batch)
        offa, offb = _batch_offsets(batch, sa, "oa"), _batch_offsets(batch, sb, "ob")
        out.append(f"  for (int64_t b = 0; b < {nb}; b++) {{ int64_t r, oa = 0, ob = 0; r = b;{offa}"
                   f" r = b;{offb}\n    {mm}({A} + oa, {sam}, {sak}, {B} + ob, {sbk}, {sbn}, "
                   f"{C} + b * {M * N}, {M}, {N}, {K}); }}")

    def _attention(self, st: Mapping, out: list[str]) -> None:
        q, k, v = st["in"][:3]
        mask = st["in"][3] if len(st["in"]) > 3 else None
        r = st["out"][0]
        if not all(self.dtype(x) == "float32" for x in (q, k, v, r)):
            raise _fail(st, "only float32 attention is native")
        qs, ks = self.shape(q), self.shape(k)
        L, E, S, Ev = qs[-2], qs[-1], ks[-2], self.shape(v)[-1]
        batch = qs[:-2]
        nb = _numel(batch)
        kv_batch = ks[:-2]
        # grouped-query attention: kv head = q head // (Hq / Hkv)
        ratio = batch[-1] // kv_batch[-1] if len(batch) >= 1 and kv_batch and kv_batch[-1] else 1
        def kv_offsets(slot: int) -> str:
            strides = _broadcast_strides(self.shape(slot)[:-2], self.strides(slot)[:-2],
                                         [*batch[:-1], batch[-1]] if batch else [])
            if ratio > 1:
                strides = strides[:-1] + [0]
                extra = f" o += ((b % {batch[-1]}) / {ratio}) * {self.strides(slot)[-3]};"
            else:
                extra = ""
            return _batch_offsets(batch, strides, "o") + extra
        mask_kind, ms = 0, ""
        if mask is not None:
            mask_kind = 1 if self.dtype(mask) == "bool" else 2
            if self.dtype(mask) not in ("bool", "float32"):
                raise _fail(st, f"a {self.dtype(mask)} mask")
            t = torch.empty_strided(self.shape(mask), self.strides(mask), device="meta")
            t = t.expand(*batch, L, S)
            mstr = list(t.stride())
            es = 1 if mask_kind == 1 else 4
            ms = (f" const char *mk = (const char *){self.ptr(mask)} + ("
                  f"{_offset_expr(batch, mstr[:-2], 'b')} + l * {mstr[-2]}) * {es};")
            mstride = mstr[-1]
        else:
            mstride = 0
        self.scratch = max(self.scratch, S)
        qst, kst, vst = self.strides(q), self.strides(k), self.strides(v)
        causal = bool(st["props"].get("is_causal"))
        scale = float(st["props"]["scale"])
        out.append(
            f"  for (int64_t b = 0; b < {nb}; b++) for (int64_t l = 0; l < {L}; l++) {{\n"
            f"    int64_t r, o; const float *qp = {self.typed(q)} + {_offset_expr(batch, qst[:-2], 'b')}"
            f" + l * {qst[-2]};\n"
            f"    r = b; o = 0;{kv_offsets(k)} const float *kp = {self.typed(k)} + o;\n"
            f"    r = b; o = 0;{kv_offsets(v)} const float *vp = {self.typed(v)} + o;\n"
            f"    {'const char *mk = 0;' if mask is None else ms}\n"
            f"    irc_attention_row(qp, {qst[-1]}, kp, {kst[-2]}, {kst[-1]}, vp, {vst[-2]}, {vst[-1]}, "
            f"mk, {mask_kind}, {mstride}, {self.typed(r)} + (b * {L} + l) * {Ev}, {S}, {E}, {Ev}, "
            f"{scale!r}f, {'l' if causal else str(S)}, m->scratch); }}")

    def _embedding(self, st: Mapping, out: list[str]) -> None:
        table, idx = st["in"]
        self._rows(st, out, table, idx, 0)

    def _index_select(self, st: Mapping, out: list[str]) -> None:
        if st["props"]["dim"] != 0:
            raise _fail(st, "index_select along a dimension other than 0")
        a, idx = st["in"]
        self._rows(st, out, a, idx, 0)

    def _rows(self, st: Mapping, out: list[str], table: int, idx: int, dim: int) -> None:
        r = st["out"][0]
        tp, ip = self.dense(table, out), self.dense(idx, out)
        row = _numel(self.shape(table)[1:])
        es = self.item_bytes(table)
        n = _numel(self.shape(idx))
        out.append(f"  for (int64_t i = 0; i < {n}; i++) memcpy({self.ptr(r)} + i * {row * es}, "
                   f"{tp} + (int64_t)(({C_TYPES[self.dtype(idx)]} *){ip})[i] * {row * es}, "
                   f"{row * es});")

    def dense(self, slot: int, out: list[str]) -> str:
        """C expression of ``slot``'s data, densely laid out (copied if it is a strided view)."""
        if self.contiguous(slot):
            return self.ptr(slot)
        t = torch.empty_strided(self.shape(slot), self.strides(slot), device="meta")
        return self._materialize(t, self.ptr(slot), self.dtype(slot), out)

    def _concat(self, st: Mapping, out: list[str]) -> None:
        r = st["out"][0]
        dim = st["props"]["dim"] % len(self.shape(r))
        rstr = _contiguous(self.shape(r))
        es = self.item_bytes(r)
        at = 0
        for x in st["in"]:
            xs = self.shape(x)
            out.append(f"  {{ static const int64_t sh[] = {{{_list(xs)}}}, ss[] = {{{_list(self.strides(x))}}},"
                       f" ds[] = {{{_list(rstr)}}}; char *tmp = {self.ptr(r)} + {at * rstr[dim] * es};\n"
                       f"    const char *src = {self.ptr(x)};\n"
                       f"    if ({_numel(xs)}) {{ {_strided_copy(len(xs), es)} }} }}")
            at += xs[dim]

    def _quantized_matmul(self, st: Mapping, out: list[str]) -> None:
        x, q, sc = st["in"]
        r = st["out"][0]
        if self.dtype(x) != "float32" or self.dtype(r) != "float32" or not self.contiguous(x):
            raise _fail(st, "a quantized matmul on non-float32 or strided input")
        n, m, k = int(st["n"]), int(st["m"]), int(st["k"])
        sym = _c_name(st["kernel"])
        if not st.get("permute_int4"):
            out.append(f"  {sym}({self.ptr(x)}, {self.ptr(x)}, {self.ptr(q)}, {self.ptr(sc)}, "
                       f"{self.ptr(r)}, 0, {n});")
            return
        # the int4 vector path reads each whole 32-chunk of a row as its 16 even
        # elements, then its 16 odd ones (int4_layout.permute_for_int4)
        whole = k // 32 * 32
        self.scratch = max(self.scratch, m * k)
        out.append(f"  {{ const float *src = (const float *){self.ptr(x)};\n"
                   f"    float *xv = m->scratch;\n"
                   f"    for (int64_t i = 0; i < {m}; i++) {{\n"
                   f"      const float *row = src + i * {k}; float *dst = xv + i * {k};\n"
                   f"      for (int64_t c = 0; c < {whole}; c += 32)\n"
                   f"        for (int64_t l = 0; l < 16; l++) {{ dst[c + l] = row[c + 2 * l]; "
                   f"dst[c + 16 + l] = row[c + 2 * l + 1]; }}\n"
                   f"      for (int64_t c = {whole}; c < {k}; c++) dst[c] = row[c];\n"
                   f"    }}\n"
                   f"    {sym}({self.ptr(x)}, xv, {self.ptr(q)}, {self.ptr(sc)}, {self.ptr(r)}, 0, {n});\n"
                   f"  }}")


def _element_size(dtype: str) -> int:
    return torch.empty(0, dtype=getattr(torch, dtype)).element_size()


def _copy_to_dense(dst: str, src: str, shape: Sequence[int], strides: Sequence[int], es: int,
                   guard: str = "") -> str:
    """C copying the strided ``src`` (element strides) into the dense ``dst`` (irc_copy)."""
    return (f"  {{ static const int64_t sh[] = {{{_list(shape)}}}, ss[] = {{{_list(strides)}}}; "
            f"{guard}irc_copy({dst}, {src}, sh, ss, {len(shape)}, {es}); }}")


def _as_2d(one_d: bool, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
           dilation: Sequence[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    """A 1-d window's parameters (``one_d``) as 2-d ones with a unit first
    dimension (H = 1), as :meth:`_Writer._nhwc` lays out 1-d operands."""
    k, s, p, d = list(kernel), list(stride), list(padding), list(dilation)
    if one_d:
        return [1, *k], [1, *s], [0, *p], [1, *d]
    return k, s, p, d


def _viewable(t: torch.Tensor, shape: Sequence[int]) -> bool:
    try:
        t.view(shape)
        return True
    except (RuntimeError, ValueError):  # meta tensors raise ValueError
        return False


def _strided_copy(rank: int, es: int) -> str:
    """C copying ``sh``-shaped ``src`` (strides ss) to ``tmp`` (strides ds)."""
    loops, idx_s, idx_d = "", [], []
    for d in range(rank):
        loops += f"for (int64_t i{d} = 0; i{d} < sh[{d}]; i{d}++) "
        idx_s.append(f"i{d} * ss[{d}]")
        idx_d.append(f"i{d} * ds[{d}]")
    src = " + ".join(idx_s) or "0"
    dst = " + ".join(idx_d) or "0"
    return (f"{loops}memcpy(tmp + ({dst}) * {es}, src + ({src}) * {es}, {es});")


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _list(xs: Sequence[int]) -> str:
    return ", ".join(str(int(x)) for x in xs) or "0"


def _broadcast_strides(shape: Sequence[int], strides: Sequence[int], batch: Sequence[int]
                       ) -> list[int]:
    """Strides of an operand's batch dims aligned to ``batch`` (0 where broadcast)."""
    pad = len(batch) - len(shape)
    out = []
    for i in range(len(batch)):
        j = i - pad
        if j < 0 or shape[j] == 1:
            out.append(0)
        else:
            out.append(int(strides[j]))
    return out


def _batch_offsets(batch: Sequence[int], strides: Sequence[int], target: str) -> str:
    """C accumulating into ``target`` the element offset of flat batch index ``r`` (consumed)."""
    code = ""
    for d in reversed(range(len(batch))):
        if strides[d]:
            code += f" {target} += (r % {batch[d]}) * {strides[d]};"
        code += f" r /= {batch[d]};"
    return code


def _offset_expr(batch: Sequence[int], strides: Sequence[int], var: str) -> str:
    terms, div = [], 1
    for d in reversed(range(len(batch))):
        if strides[d]:
            terms.append(f"(({var} / {div}) % {batch[d]}) * {strides[d]}")
        div *= batch[d]
    return " + ".join(terms) or "0"


def _c_name(symbol: str) -> str:
    return symbol.replace(".", "_")


def _kernel_prototypes(schedule: Mapping) -> list[str]:
    seen: dict[str, str] = {}
    for st in list(schedule["derived_steps"]) + list(schedule["steps"]):
        if st["op"] == "launch":
            n = len(st["in"]) + len(st["out"])
            params = ", ".join(["void *"] * n)
            if st["parallel"]:
                seen[st["kernel"]] = (f"void {st['kernel']}({params}, int64_t, int64_t);\n"
                                      f"void {st['kernel']}_omp({params}, int64_t, int64_t, int32_t)"
                                      f" __asm__(\"{st['kernel']}.omp\");")
            else:
                seen[st["kernel"]] = f"void {st['kernel']}({params});"
        elif st["op"] == "graph.quantized_matmul":
            seen[st["kernel"]] = (f"void {st['kernel']}(void *, void *, void *, void *, void *, "
                                  f"int64_t, int64_t);")
    return list(seen.values())


def native_sources(schedule: Mapping, offsets: Mapping[str, tuple[int, int]] | None,
                   weights_bytes: int, weights_sha256: str, inputs: Sequence[Mapping],
                   outputs: Sequence[Mapping]) -> tuple[dict[str, str], dict]:
    """({"irc_native.c": C source}, the manifest's ``c_abi`` entry) for a schedule,
    or ({}, an entry saying why not) when a step has no native version.

    ``offsets`` (tensor name -> offset in the weights file): a package, opened by
    ``irc_model_open``. None: the JIT's form (:mod:`irc.backends.llvm.native_jit`),
    whose weights and constants are pointers handed over by ``irc_jit_new`` /
    ``irc_jit_bind`` in the order of ``schedule["weights"] + schedule["constants"]``."""
    w = _Writer(schedule, offsets, inputs, outputs)
    w.place()
    derived: list[str] = []
    body: list[str] = []
    try:
        for st in schedule["derived_steps"]:
            w.step(st, derived)
        for st in schedule["steps"]:
            w.step(st, body)
    except NoNativeSchedule as err:
        return {}, {"available": False, "reason": str(err)}
    derived += w.derived_out
    # results into the caller's buffers
    for i, slot in enumerate(schedule["outputs"]):
        sh = w.shape(slot)
        body.append(_copy_to_dense(f"(char *)out[{i}]", w.ptr(slot), sh, w.strides(slot),
                                   w.item_bytes(slot), guard=f"if ({_numel(sh)}) "))
    src = _render(schedule, w, derived, body, weights_bytes, weights_sha256, inputs, outputs)
    return {"irc_native.c": src}, {"available": True, "abi_version": 1, "header": "irc_model.h",
                                   "library_calls": "irc's own C (no BLAS)"}


def _render(schedule: Mapping, w: _Writer, derived: list[str], body: list[str], weights_bytes: int,
            weights_sha256: str, inputs: Sequence[Mapping], outputs: Sequence[Mapping]) -> str:
    def infos(items: Sequence[Mapping], kind: str) -> str:
        rows = []
        for i, it in enumerate(items):
            rows.append(f"static const int64_t {kind}_shape{i}[] = {{{_list(it['shape'])}}};")
        table = ", ".join(
            f"{{\"{it['name']}\", {DTYPE_CODES[it['dtype']]}, {len(it['shape'])}, {kind}_shape{i}, "
            f"{_numel(it['shape']) * torch.empty(0, dtype=getattr(torch, it['dtype'])).element_size()}}}"
            for i, it in enumerate(items)) or "{0}"
        rows.append(f"static const irc_tensor_info {kind}_info[] = {{{table}}};")
        return "\n".join(rows)
    own_sizes = [w.nbytes(s) for s in w.own]
    n_own = len(own_sizes)
    n_weights = len(schedule["weights"]) + len(schedule["constants"])
    text = [HEADER_TEXT, RUNTIME_C, *_kernel_prototypes(schedule), infos(inputs, "in"),
            infos(outputs, "out")]
    text.append(f"""
struct irc_model {{ char *map; size_t map_size; char *arena; char *own[{max(n_own, 1)}];
  float *scratch; int threads; char *w[{max(n_weights, 1)}]; }};
static const int64_t own_bytes[{max(n_own, 1)}] = {{{_list(own_sizes)}}};
int32_t irc_model_num_inputs(const irc_model *m) {{ (void)m; return {len(inputs)}; }}
int32_t irc_model_num_outputs(const irc_model *m) {{ (void)m; return {len(outputs)}; }}
irc_status irc_model_input(const irc_model *m, int32_t i, irc_tensor_info *info) {{
  if (!m || !info || i < 0 || i >= {len(inputs)}) return fail(IRC_ERR_ARGUMENT, "no input %d", i);
  *info = in_info[i]; return IRC_OK; }}
irc_status irc_model_output(const irc_model *m, int32_t i, irc_tensor_info *info) {{
  if (!m || !info || i < 0 || i >= {len(outputs)}) return fail(IRC_ERR_ARGUMENT, "no output %d", i);
  *info = out_info[i]; return IRC_OK; }}
void irc_model_close(irc_model *m) {{
  if (!m) return;
  if (m->map) munmap(m->map, m->map_size);
  for (int i = 0; i < {n_own}; i++) free(m->own[i]);
  free(m->arena); free(m->scratch); free(m);
}}
static void derive(irc_model *m) {{
  const void *const *in = 0; void *const *out = 0; (void)in; (void)out;
{chr(10).join(derived)}
}}
static irc_status allocate(irc_model *m) {{
  m->arena = aligned_alloc(64, {max(-(-int(schedule['arena_bytes']) // 64) * 64, 64)});
  m->scratch = malloc(sizeof(float) * {max(w.scratch, 1)});
  if (!m->arena || !m->scratch) {{ irc_model_close(m); return fail(IRC_ERR_MEMORY, "out of memory"); }}
  for (int i = 0; i < {n_own}; i++) {{
    m->own[i] = aligned_alloc(64, (own_bytes[i] + 63) / 64 * 64 + 64);
    if (!m->own[i]) {{ irc_model_close(m); return fail(IRC_ERR_MEMORY, "out of memory"); }} }}
  return IRC_OK;
}}
{_jit_entries(n_weights) if w.pointers else _open_entry(weights_bytes, weights_sha256)}
irc_status irc_model_run(irc_model *m, const void *const *in, void *const *out) {{
  if (!m || (!in && {len(inputs)}) || (!out && {len(outputs)}))
    return fail(IRC_ERR_ARGUMENT, "irc_model_run: null argument");
{chr(10).join(body)}
  return IRC_OK;
}}
""")
    return "\n".join(text)


def _jit_entries(n_weights: int) -> str:
    """The JIT's entry points: weights as pointers, rebound when they change."""
    return f"""
void irc_jit_bind(irc_model *m, char *const *w, int threads) {{
  for (int i = 0; i < {n_weights}; i++) m->w[i] = w[i];
  m->threads = threads > 0 ? threads : 1;
  derive(m);
}}
irc_status irc_jit_new(char *const *w, int threads, irc_model **out) {{
  irc_status st;
  irc_model *m = calloc(1, sizeof *m);
  if (!m) return fail(IRC_ERR_MEMORY, "out of memory");
  if ((st = allocate(m)) != IRC_OK) return st;
  irc_jit_bind(m, w, threads);
  *out = m; return IRC_OK;
}}
void irc_jit_threads(irc_model *m, int threads) {{ m->threads = threads > 0 ? threads : 1; }}
"""


def _open_entry(weights_bytes: int, weights_sha256: str) -> str:
    """``irc_model_open``: a package directory, its weights file mapped."""
    return f"""
irc_status irc_model_open(const char *dir, irc_model **out) {{
  char path[4096]; irc_status st;
  if (!dir || !out) return fail(IRC_ERR_ARGUMENT, "irc_model_open: null argument");
  *out = 0;
  if ((st = check_private(dir)) != IRC_OK) return st;
  snprintf(path, sizeof path, "%s/manifest.json", dir);
  FILE *f = fopen(path, "rb");
  if (!f) return fail(IRC_ERR_IO, "%s: %s", path, strerror(errno));
  char buf[65536]; size_t n = fread(buf, 1, sizeof buf - 1, f); fclose(f); buf[n] = 0;
  if (!strstr(buf, "\\"format\\": \\"irc-package\\"") || !strstr(buf, "\\"format_version\\": 1,"))
    return fail(IRC_ERR_FORMAT, "%s: not an irc package of format version 1: export the model "
                "again with the irc that built this library", path);
  snprintf(path, sizeof path, "%s/weights.safetensors", dir);
  if ((st = check_private(path)) != IRC_OK) return st;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return fail(IRC_ERR_IO, "%s: %s", path, strerror(errno));
  struct stat sb; fstat(fd, &sb);
  if ((int64_t)sb.st_size != {weights_bytes}LL) {{ close(fd);
    return fail(IRC_ERR_FORMAT, "%s: %lld bytes, this library expects {weights_bytes} (truncated "
                "or from another export)", path, (long long)sb.st_size); }}
  irc_model *m = calloc(1, sizeof *m);
  if (!m) {{ close(fd); return fail(IRC_ERR_MEMORY, "out of memory"); }}
  m->map_size = (size_t)sb.st_size;
  m->map = {'mmap(0, m->map_size, PROT_READ, MAP_PRIVATE, fd, 0)' if weights_bytes else '0'};
  close(fd);
  if (m->map == MAP_FAILED) {{ m->map = 0; irc_model_close(m);
    return fail(IRC_ERR_IO, "%s: cannot map: %s", path, strerror(errno)); }}
  if (m->map) {{ char hex[65]; irc_sha256((const unsigned char *)m->map, m->map_size, hex);
    if (strcmp(hex, "{weights_sha256}") != 0) {{ irc_model_close(m);
      return fail(IRC_ERR_FORMAT, "%s: checksum mismatch (changed after export, or corrupt): "
                  "export the model again", path); }} }}
  if ((st = allocate(m)) != IRC_OK) return st;
  m->threads = irc_threads();
  derive(m);
  *out = m; return IRC_OK;
}}
"""
