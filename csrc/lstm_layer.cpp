// The CPU kernels of lstmkit::lstm_layer and lstmkit::lstm_layer_backward (see src/lstmkit/ops/layer_op.py).
//
// Same arguments, results and workspace layout as the readable Python kernels in src/lstmkit/ops/fused.py, which
// are the specification; this file is that algorithm with the time loop in C++ and, per step, one pass over the
// rows for the gate activations and the cell update instead of a dozen tensor ops.
//
// Letters: T steps, B batch, I input features, H hidden units, P = size of h (proj_size or H),
// N = rows of packed time-major data (T * B when padded).
//
// Forward, per layer call:
//   gates = x @ w_ih.T + b                       (N, 4H)  one GEMM for all steps (LN(x @ w_ih.T) + b with ln_ih);
//                                                         inference: by chunks of steps inside the loop (kChunkGatesBytes)
//   for t in processing order:
//     gates[t] += h_in @ w_hh.T                  (B_t, 4H) one GEMM (MKL, beta = 1, in place)
//     one pass per row: i f g o, c, tanh c, h (the variant's extras at compile time, no branches inside)
//     h = h_raw @ w_hr.T with a projection       (B_t, P)
// Backward: the Python kernel's loop (per step: one pass for d(pre-activations) and dc, one GEMM for dh), then one
// GEMM each for dx, dw_ih, dw_hh (and dw_hr); a large plain layer in the units loop adds dx, dw_ih, dw_hh and the
// bias gradient chunk by chunk of steps instead, keeping dz for one chunk only (see kChunkDzBytes).
//
// Precision: float32 and float64 compute in their own type. bfloat16 has two ways, chosen per call by bf16_gemm():
// - "native": the GEMMs in bfloat16 (MKL/oneDNN accumulate in float32), the cell state and the pointwise arithmetic
//   in float32, the workspace stored in bfloat16. Fast where the CPU multiplies bfloat16 in hardware (AMX).
// - "float32" (hosts without AMX-BF16): the float32 kernel, with every GEMM operand rounded to bfloat16 (x and the
//   weights are bfloat16 values already; h_{t-1}, h_raw, h * recurrent mask in the forward, the gradients of the
//   gate pre-activations, of R h under layer norm and of the projected h in the backward), so each product is a
//   bfloat16 GEMM with float32 accumulation done by float32 FMA, which such hosts run faster than their bfloat16
//   GEMMs; the workspace stays float32 (the fake kernel says so: layer_op.workspace_dtype), outputs and gradients
//   are bfloat16. LSTMKIT_CPP_BF16=native|float32 forces one (benchmarks/RESULTS.md, "Session 7").

#include <torch/extension.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/util/strides.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>
#include <algorithm>
#include <atomic>
#include <mutex>
#include <cstdlib>
#include <thread>
#include <type_traits>
#include <string>
#include <utility>

#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#ifndef LSTMKIT_SOURCE_HASH
#define LSTMKIT_SOURCE_HASH "unknown"
#endif

namespace {

using at::Tensor;
using c10::optional;

constexpr double kLayerNormEps = 1e-5;

// ------------------------------------------------------------------------------------------------ element access

// Raw storage type and arithmetic type of each dtype: bfloat16 is read as uint16 bits and computed in float.
template <typename S> struct Num { using raw = S; using acc = S; };
template <> struct Num<c10::BFloat16> { using raw = uint16_t; using acc = float; };

inline float load(const float* p, int64_t j) { return p[j]; }
inline double load(const double* p, int64_t j) { return p[j]; }
inline float load(const uint16_t* p, int64_t j) {
  uint32_t u = static_cast<uint32_t>(p[j]) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline void store(float* p, int64_t j, float v) { p[j] = v; }
inline void store(double* p, int64_t j, double v) { p[j] = v; }
inline void store(uint16_t* p, int64_t j, float v) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  p[j] = static_cast<uint16_t>(u >> 16);
}

// ------------------------------------------------------------------------------------------------ bfloat16 on float32

// v rounded to the nearest bfloat16 (ties to even), kept in float: store() into bfloat16 then load(), in one step
inline float round_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// rounds columns [c0, c1) of rows [r0, r1) of a row-major block with leading dimension ld (`on`: the call rounds;
// only float buffers are ever rounded, the other instances are no-ops)
template <typename R>
inline void round_bf16_block(bool on, R* p, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  if constexpr (std::is_same<R, float>::value) {
    if (!on || p == nullptr) return;
    for (int64_t r = r0; r < r1; ++r) {
      float* row = p + r * ld;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) row[c] = round_bf16(row[c]);
    }
  }
}
inline void round_bf16_tensor(bool on, const Tensor& t) {  // t: contiguous float rows (a narrow of a buffer)
  if (!on || !t.defined() || t.numel() == 0) return;
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous(), "round_bf16_tensor: contiguous float32 only");
  round_bf16_block(true, t.data_ptr<float>(), t.numel(), 0, 1, 0, t.numel());
}

// Whether the CPU multiplies bfloat16 in hardware: AMX-BF16, CPUID leaf 7 subleaf 0, EDX bit 22 (oneDNN then runs
// bfloat16 GEMMs on tiles; without it they ran slower than float32 here: benchmarks/RESULTS.md, "Session 7")
bool host_amx_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  return ((d >> 22) & 1u) != 0;
#else
  return false;
#endif
}

// How a bfloat16 call computes (see the header): "native" or "float32". LSTMKIT_CPP_BF16 (read per call, so one
// process can compare both) forces one; unset or empty: native with AMX-BF16, else float32.
std::string bf16_gemm() {
  static const bool amx = host_amx_bf16();
  const char* forced = std::getenv("LSTMKIT_CPP_BF16");
  const std::string mode = forced != nullptr ? forced : "";
  if (mode.empty()) return amx ? "native" : "float32";
  TORCH_CHECK(mode == "native" || mode == "float32", "LSTMKIT_CPP_BF16 must be 'native' or 'float32' (or unset), got '",
              mode, "'");
  return mode;
}

template <typename S> typename Num<S>::raw* ptr(const Tensor& t) {
  return t.defined() && t.numel() ? reinterpret_cast<typename Num<S>::raw*>(t.data_ptr()) : nullptr;
}

// ------------------------------------------------------------------------------------------------ activations

// exp for float written with plain arithmetic so that the compiler vectorises the loops that call it: 2^k * p(r)
// with r = x - k ln2 in [-ln2/2, ln2/2] and p the degree-7 Taylor polynomial (relative error < 2e-7).
// (Comparisons instead of std::fmin / std::fmax / std::clamp throughout: those are library calls under strict
// IEEE semantics, which keep GCC from vectorising the loop.)
template <typename A> inline A clamp(A x, A lo, A hi) { return x < lo ? lo : (x > hi ? hi : x); }

inline float exp_approx(float x) {
  x = clamp(x, -87.0f, 88.0f);
  // k = round(x / ln2) by the 1.5 * 2^23 trick: the addition rounds away the fraction (no library call)
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - k * 0.693145751953125f) - k * 1.42860682030941723212e-6f;
  float p = 1.98412698412698412e-4f;
  p = p * r + 1.38888888888888889e-3f;
  p = p * r + 8.33333333333333333e-3f;
  p = p * r + 4.16666666666666667e-2f;
  p = p * r + 1.66666666666666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline float sigmoid(float z) { return 1.0f / (1.0f + exp_approx(-z)); }
// tanh: below |z| = 0.625 an odd polynomial (the coefficients of Cephes' tanhf, S. Moshier), above it
// 1 - 2 / (exp(2|z|) + 1); relative error < 1.4e-7 everywhere (both are computed, then one is selected)
inline float tanh_small(float z, float s) {  // s = z * z
  float p = -5.70498872745e-3f;
  p = p * s + 2.06390887954e-2f;
  p = p * s - 5.37397155531e-2f;
  p = p * s + 1.33314422036e-1f;
  p = p * s - 3.33332819422e-1f;
  return z + z * s * p;
}
inline float tanh_(float z) {
  const float a = std::fabs(z);
  const float small = tanh_small(z, z * z);
  const float large = std::copysign(1.0f - 2.0f / (exp_approx(2.0f * a) + 1.0f), z);
  return a < 0.625f ? small : large;
}
inline double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }
inline double tanh_(double z) { return std::tanh(z); }

// Two activations for one division: 1 / (d1 d2), then each reciprocal by a product. The divider is the row sweep's
// narrowest unit (one 16-lane division per 16 cycles or so): five divisions per unit were most of the sweep's time,
// three make inference at H = 128 about 18 % faster (benchmarks/RESULTS.md, "Fewer divisions"). That was the
// "stalled load of the cell row" of session 5: perf's samples landed beside the division's waiting consumers.
// The exp arguments are clamped to +-40 so that the product stays finite; sigmoid(-40) = 4e-18, far below a
// float32 ulp of anything it is added to.
inline void sigmoid2(float a, float b, float& sa, float& sb) {
  const float da = 1.0f + exp_approx(clamp(-a, -40.0f, 40.0f)), db = 1.0f + exp_approx(clamp(-b, -40.0f, 40.0f));
  const float r = 1.0f / (da * db);
  sa = db * r;
  sb = da * r;
}
// sigmoid(a) and tanh(b), tanh as tanh_ computes it
inline void sigmoid_tanh(float a, float b, float& sa, float& tb) {
  const float da = 1.0f + exp_approx(clamp(-a, -40.0f, 40.0f));
  const float m = std::fabs(b);
  const float db = exp_approx(clamp(2.0f * m, 0.0f, 40.0f)) + 1.0f;
  const float r = 1.0f / (da * db);
  sa = db * r;
  const float small = tanh_small(b, b * b);
  const float large = std::copysign(1.0f - 2.0f * (da * r), b);
  tb = m < 0.625f ? small : large;
}
inline void sigmoid2(double a, double b, double& sa, double& sb) { sa = sigmoid(a), sb = sigmoid(b); }
inline void sigmoid_tanh(double a, double b, double& sa, double& tb) { sa = sigmoid(a), tb = tanh_(b); }
// a + w (b - a), exact at w = 0 and w = 1 (torch.lerp's two-sided form), so a zoned-out unit keeps its value
template <typename A> inline A lerp(A a, A b, A w) { return w < A(0.5) ? a + w * (b - a) : b - (b - a) * (A(1) - w); }

// ------------------------------------------------------------------------------------------------ per-step GEMM

// The per-step products are small (B_t rows): at H = 128 the dispatcher's few microseconds per at::addmm_out are
// a tenth of a step. libtorch exports MKL's Fortran BLAS (sgemm_, dgemm_) on x86; when the symbols are there the
// step calls them directly, else (weak symbols, null) it goes through ATen, which calls the same BLAS.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

// c (n, m) = a (n, k) @ b (k, m) (+ c when accumulate); rows of each contiguous, row strides as given
// BLAS's leading dimension of a row-major (r, s) matrix: its row stride, which must be >= s (torch leaves the stride
// of a size-1 dimension arbitrary, e.g. w.t().contiguous() of an (8, 1) w keeps stride 1: then any value >= s works)
int64_t leading(const Tensor& t) { return t.size(0) <= 1 ? std::max<int64_t>(1, t.size(1)) : t.stride(0); }
bool blas_rows(const Tensor& t) {
  return (t.size(1) <= 1 || t.stride(1) == 1) && leading(t) >= std::max<int64_t>(1, t.size(1));
}

// b may be a transposed view (w.t() of a contiguous w): BLAS reads it in place ('T'), no copy
void step_gemm(Tensor& c, const Tensor& a, const Tensor& b, bool accumulate) {
  const bool b_rows = blas_rows(b), b_cols = !b_rows && blas_rows(b.t());
  const bool rows_ok = blas_rows(a) && (b_rows || b_cols) && blas_rows(c);
  const int n = a.size(0), k = a.size(1), m = b.size(1);
  const int lda = leading(a), ldb = b_rows ? leading(b) : leading(b.t()), ldc = leading(c);
  const char none = 'N', trans = 'T';
  const char* op_b = b_rows ? &none : &trans;
  if (rows_ok && n > 0 && a.scalar_type() == at::kFloat && sgemm_ != nullptr) {
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    // column-major view: c^T (m, n) = b^T (m, k) a^T (k, n)
    sgemm_(op_b, &none, &m, &n, &k, &one, b.data_ptr<float>(), &ldb, a.data_ptr<float>(), &lda, &beta,
           c.data_ptr<float>(), &ldc);
  } else if (rows_ok && n > 0 && a.scalar_type() == at::kDouble && dgemm_ != nullptr) {
    const double one = 1.0, beta = accumulate ? 1.0 : 0.0;
    dgemm_(op_b, &none, &m, &n, &k, &one, b.data_ptr<double>(), &ldb, a.data_ptr<double>(), &lda, &beta,
           c.data_ptr<double>(), &ldc);
  } else if (accumulate) {
    at::addmm_out(c, c, a, b);
  } else {
    at::mm_out(c, a, b);
  }
}

// ------------------------------------------------------------------------------------------------ row bookkeeping

// Where each step's rows live: step t owns rows [offset[t], offset[t] + size[t]); its sequences are the first
// size[t] of the batch. State buffers hold [outputs (N); initial (B)], as in fused.py.
struct Schedule {
  std::vector<int64_t> size, offset, order;
  int64_t total = 0, batch = 0;
  bool uniform = true;
  bool reverse = false;
  // previous state row (in the [outputs; initial] buffer) of row b of step t
  int64_t prev_row(int64_t t, int64_t b) const {
    const int64_t nb = reverse ? t + 1 : t - 1;
    if (nb >= 0 && nb < static_cast<int64_t>(size.size()) && b < size[nb]) return offset[nb] + b;
    return total + b;
  }
};

Schedule make_schedule(const Tensor& x, const optional<Tensor>& batch_sizes, int64_t batch, bool reverse) {
  Schedule s;
  s.reverse = reverse;
  s.batch = batch;
  if (batch_sizes.has_value() && batch_sizes->defined()) {
    Tensor sizes = batch_sizes->to(at::kLong).contiguous();
    const int64_t* p = sizes.data_ptr<int64_t>();
    s.size.assign(p, p + sizes.numel());
  } else {
    TORCH_CHECK(x.dim() == 3, "lstmkit::lstm_layer: x must be (T, B, I) without batch_sizes, got ", x.sizes());
    s.size.assign(x.size(0), x.size(1));
  }
  const int64_t steps = s.size.size();
  s.offset.resize(steps);
  int64_t at_row = 0;
  for (int64_t t = 0; t < steps; ++t) {
    s.offset[t] = at_row;
    at_row += s.size[t];
    s.uniform = s.uniform && s.size[t] == batch;
  }
  s.total = at_row;
  s.order.resize(steps);
  for (int64_t k = 0; k < steps; ++k) s.order[k] = reverse ? steps - 1 - k : k;
  return s;
}

// (B_t, .) view of the previous states of step t's rows, or a copy into `scratch` when they are not contiguous
// (reverse direction, packed input: sequences that start at this step take their initial state).
Tensor rows_before(const Tensor& buf, const Schedule& s, int64_t t, Tensor& scratch) {
  const int64_t n = s.size[t];
  const int64_t nb = s.reverse ? t + 1 : t - 1;
  const int64_t steps = s.size.size();
  if (nb < 0 || nb >= steps) return buf.narrow(0, s.total, n);
  const int64_t have = std::min(n, s.size[nb]);
  if (have == n) return buf.narrow(0, s.offset[nb], n);
  Tensor out = scratch.narrow(0, 0, n);
  out.narrow(0, 0, have).copy_(buf.narrow(0, s.offset[nb], have));
  out.narrow(0, have, n - have).copy_(buf.narrow(0, s.total + have, n - have));
  return out;
}

int64_t grain_for(int64_t row_elements) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row_elements)); }

// ------------------------------------------------------------------------------------------------ one parallel region
//
// At 2 threads the loop above (an at::parallel_for for each step's row sweep, and MKL forking its own team for each
// step's GEMM) paid two fork/joins per step and split the sweep only above 32,768 elements, so at H = 128 it ran on
// one thread (benchmarks/RESULTS.md, "Where the 2-thread step's time went"). The partitioned loop instead opens ONE
// OpenMP region around the whole time loop. Each thread owns a slice of the hidden units (multiples of 16, one
// AVX-512 vector of floats); per step it computes its own four gate column blocks of h_{t-1} @ W_hh^T with a
// BLAS call (MKL inside an OpenMP region runs on the calling thread alone), updates its own units, and meets the others at a barrier before the next step reads
// h_t. Partitions are counted from the team the runtime actually gave (omp_get_num_threads), so a smaller team
// cannot deadlock the barrier.

// Fortran BLAS's gemm for each element type (column-major: c = op(a) op(b), all sizes and leading dimensions int)
inline void blas_gemm(char ta, char tb, int m, int n, int k, float beta, const float* a, int lda, const float* b,
                      int ldb, float* c, int ldc) {
  const float one = 1.0f;
  sgemm_(&ta, &tb, &m, &n, &k, &one, a, &lda, b, &ldb, &beta, c, &ldc);
}
inline void blas_gemm(char ta, char tb, int m, int n, int k, double beta, const double* a, int lda, const double* b,
                      int ldb, double* c, int ldc) {
  const double one = 1.0;
  dgemm_(&ta, &tb, &m, &n, &k, &one, a, &lda, b, &ldb, &beta, c, &ldc);
}
// native bfloat16 never takes the partitioned loop (partition_blas below; the float32 way runs the float instance);
// this only lets its instance of the loop compile
inline void blas_gemm(char, char, int, int, int, float, const uint16_t*, int, const uint16_t*, int, uint16_t*, int) {
  std::abort();
}

// BLAS on raw row-major pointers: c (n, m) = a (n, k) @ b (k, m) (+ c when accumulate), leading dimensions given
// (b_transposed: b holds the transpose, (m, k) row-major). Row-major c = a b is column-major c^T = b^T a^T.
template <typename R>
inline void raw_gemm(int64_t n, int64_t k, int64_t m, const R* a, int64_t lda, const R* b, int64_t ldb, R* c,
                     int64_t ldc, bool accumulate, bool b_transposed = false) {
  if (n <= 0 || m <= 0) return;
  blas_gemm(b_transposed ? 'T' : 'N', 'N', m, n, k, accumulate ? 1.0f : 0.0f, b, ldb, a, lda, c, ldc);
}

// c (m, n) (+)= a^T b for a (k, m) and b (k, n), row-major with leading dimensions given: the weight gradients of a
// block of rows (a: columns of dz, b: the inputs of those rows)
template <typename R>
inline void raw_gemm_tn(int64_t k, int64_t m, int64_t n, const R* a, int64_t lda, const R* b, int64_t ldb, R* c,
                        int64_t ldc, bool accumulate) {
  if (k <= 0 || m <= 0 || n <= 0) return;
  blas_gemm('N', 'T', n, m, k, accumulate ? 1.0f : 0.0f, b, ldb, a, lda, c, ldc);
}

// MKL's packed GEMM (libtorch exports its CBLAS interface on x86): a right operand reused at every step is packed
// into MKL's internal layout once per call instead of at every call of sgemm_ (at 2 threads, T=35 B=64 H=512, MKL
// spent ~7 % of the forward re-packing the weight slices of each step)
extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                      int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kMatrixB = 162;  // CBLAS's enum values

// whether a float right operand can be packed by MKL (then it can also be packed from its transpose, with no copy)
inline bool mkl_packing() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr && cblas_sgemm_compute != nullptr;
}

// Where a thread's packed weight slices live: one buffer per thread, kept from call to call (grown, never shrunk),
// so that packing writes into pages already mapped. A fresh aligned_alloc per call of a slice of 0.5-8 MB is fresh
// pages from the kernel every time (glibc maps or trims them): their first writes' page faults were most of the
// 0.3-1.0 ms the packing took per call and direction at T=35 B=16 H=512 (benchmarks/RESULTS.md, "Session 8: fixed
// costs of a small training step"). Each parallel region's thread calls begin() and then take()s its slices; a
// slice that does not fit gets memory of its own for this call (owned by its StepOperand) and the buffer grows to
// this region's total at the next begin(). Bounded: per thread, the largest total of slices one region packed (at
// most one copy of w_hh and w_hr split over the threads, or one whole small w_hh per thread in the rows loop; the
// units loop's forward adds its gathered copy of the thread's rows of w_hh and one step's product, ArenaBlock).
// LSTMKIT_PACK_REUSE=0 turns it off (a fresh allocation per slice and call, for comparisons).
struct PackArena {
  float* data = nullptr;
  size_t capacity = 0, used = 0, wanted = 0;  // bytes
  PackArena() = default;
  PackArena(const PackArena&) = delete;
  PackArena& operator=(const PackArena&) = delete;
  ~PackArena() { std::free(data); }
  void begin() {
    if (wanted > capacity) {
      std::free(data);
      data = static_cast<float*>(std::aligned_alloc(64, wanted));
      capacity = data != nullptr ? wanted : 0;
    }
    used = wanted = 0;
  }
  float* take(size_t bytes) {  // bytes: a multiple of 64; nullptr when it does not fit this call
    wanted += bytes;
    if (data == nullptr || used + bytes > capacity) return nullptr;
    float* out = data + used / sizeof(float);
    used += bytes;
    return out;
  }
};
inline PackArena& thread_pack_arena() {
  static thread_local PackArena arena;
  return arena;
}
inline PackArena* pack_arena() {  // this thread's, or nullptr with LSTMKIT_PACK_REUSE=0
  const char* reuse = std::getenv("LSTMKIT_PACK_REUSE");
  return reuse != nullptr && reuse[0] == '0' ? nullptr : &thread_pack_arena();
}

// Memory for one parallel region from the thread's PackArena (begin() called in this region), or of its own when
// there is no arena or it does not fit this call (freed with the block); get() is false only when none could be had
struct ArenaBlock {
  void* data = nullptr;
  bool owned = false;
  ArenaBlock() = default;
  ArenaBlock(const ArenaBlock&) = delete;
  ArenaBlock& operator=(const ArenaBlock&) = delete;
  ~ArenaBlock() {
    if (owned) std::free(data);
  }
  bool get(PackArena* arena, size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    data = arena != nullptr ? arena->take(bytes) : nullptr;
    if (data == nullptr) data = std::aligned_alloc(64, bytes), owned = data != nullptr;
    return data != nullptr;
  }
};

// Whether the units loop's forward makes a thread's four gate blocks in one product (joined) or in four: joined
// where the thread's gathered rows of w_hh take at most kJoinedGateBytes, unless LSTMKIT_UNITS_GEMM=4 (read per
// call, for comparisons). Above it the copy cost more than the one product saved (2 threads, forward of T=35 B=16:
// H=512 10.20 -> 9.98 ms and B=64 35.46 -> 34.74 ms joined; H=1024, 8 MB a thread, 40.85 -> 41.37 ms)
constexpr int64_t kJoinedGateBytes = int64_t(2) << 20;
inline bool joined_gate_product() {
  const char* v = std::getenv("LSTMKIT_UNITS_GEMM");
  return v == nullptr || v[0] != '4';
}

// One thread's right operand of a per-step product: (k, m) row-major with leading dimension ld, packed by MKL
// when it can (float), else multiplied in place with sgemm_/dgemm_. `transposed`: the source holds the operand's
// transpose, (m, k) row-major with leading dimension ld (a block of rows of w_hh itself, so that the forward needs
// no transposed copy of the weights: `w.t().contiguous()` of a (4096, 1024) w took ~10 ms at 2 threads here).
template <typename T>
struct StepOperand {
  const T* src = nullptr;
  int64_t k = 0, m = 0, ld = 0;
  bool trans = false;
  float* packed = nullptr;
  bool owned = false;  // packed is this operand's own allocation (not in the thread's PackArena)
  StepOperand() = default;
  StepOperand(const StepOperand&) = delete;
  StepOperand& operator=(const StepOperand&) = delete;
  ~StepOperand() {
    if (owned) std::free(packed);
  }
  // bytes set() packs for these sizes (a multiple of 64; 0 where it multiplies in place)
  static size_t packed_bytes(int64_t k, int64_t m, int64_t rows) {
    if constexpr (std::is_same<T, float>::value) {
      if (m > 0 && k > 0 && rows > 0 && mkl_packing())
        return (cblas_sgemm_pack_get_size(kMatrixB, rows, m, k) + 63) / 64 * 64;
    }
    return 0;
  }
  // arena: this thread's packing buffer (begin() called in this region), or nullptr for an allocation of its own;
  // into: memory the caller reserved for it (packed_bytes() of these sizes), used before either. Returns
  // packed_bytes() of these sizes: where the next operand in the caller's reserved memory starts.
  size_t set(const T* source, int64_t k_, int64_t m_, int64_t ld_, int64_t rows, PackArena* arena,
             bool transposed = false, void* into = nullptr) {
    src = source, k = k_, m = m_, ld = ld_, trans = transposed;
    const size_t bytes = packed_bytes(k, m, rows);
    if constexpr (std::is_same<T, float>::value) {
      if (bytes > 0) {
        packed = into != nullptr ? static_cast<float*>(into) : arena != nullptr ? arena->take(bytes) : nullptr;
        if (packed == nullptr) packed = static_cast<float*>(std::aligned_alloc(64, bytes)), owned = true;
        if (packed != nullptr)
          cblas_sgemm_pack(kRowMajor, kMatrixB, transposed ? kTrans : kNoTrans, rows, m, k, 1.0f, src, ld, packed);
      }
    }
    return bytes;
  }
  // c (n, m) = a (n, k) @ this (+ c when accumulate)
  void multiply(int64_t n, const T* a, int64_t lda, T* c, int64_t ldc, bool accumulate) const {
    if (n <= 0 || m <= 0) return;
    if constexpr (std::is_same<T, float>::value) {
      if (packed != nullptr) {
        cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, n, m, k, a, lda, packed, m, accumulate ? 1.0f : 0.0f, c,
                            ldc);
        return;
      }
    }
    raw_gemm(n, k, m, a, lda, src, ld, c, ldc, accumulate, trans);
  }
};

// the BLAS the partitioned loop calls from inside its parallel region (native bfloat16 keeps the per-step ATen loop)
template <typename S> bool partition_blas() { return false; }
template <> bool partition_blas<float>() { return sgemm_ != nullptr; }
template <> bool partition_blas<double>() { return dgemm_ != nullptr; }

// The loop splits the batch rather than the units while a thread's whole copy of W_hh stays in its core's L2
// (4H x P values up to 1 MiB: H <= 256 in float32); above it, each thread streaming all of W_hh every step cost more
// than the per-step barrier (2 threads, benchmarks/RESULTS.md "Where the 2-thread step's time went")
constexpr int64_t kRowsWeightBytes = 1 << 20;

// The backward keeps dz for chunks of about kChunkDzBytes when the whole (N, 4H) dz would exceed kChunkDzAboveBytes
// (glibc's largest mmap threshold: above it every call's buffer is fresh pages), and only while a chunk has at least
// kChunkMinRowsPerInput rows per column of [x, h] (I + P): each chunk reads and writes the thread's rows of dw_ih and
// dw_hh again, which at H = 1024 (8 MiB chunks of 512 rows) cost more than the page faults it saves
// (T=35 B=64 H=1024: 1.12x -> 1.31x the GEMM floor). LSTMKIT_DZ_CHUNK=rows forces a chunk size (0: whole dz).
constexpr int64_t kChunkDzAboveBytes = int64_t(32) << 20, kChunkDzBytes = int64_t(16) << 20;
constexpr int64_t kChunkMinRowsPerInput = 2;

// A call without a workspace (inference) needs each step's gate pre-activations only for that step, so its input GEMM
// x W_ih^T runs for chunks of about kChunkGatesBytes of rows inside the time loop (each thread for its own gate
// columns or batch rows) instead of for all N rows first: the whole (N, 4H) buffer was fresh pages on every call
// when large (105 MB at T=200 B=64 H=512), and a chunk is reused and stays in cache. With layer norm of x W_ih^T
// the rows loop takes chunks (it normalises each step's rows in place), and so does the units loop where it
// normalises R h or c too (ln_units: each step's own columns in place); otherwise the units and per-step loops keep
// the whole-sequence GEMM (they normalise all rows at once). LSTMKIT_GATES_CHUNK=rows forces a chunk size (0: whole);
// _C.last_gate_rows() says how many rows the last forward call kept.
constexpr int64_t kChunkGatesBytes = int64_t(2) << 20;
// the most bytes of a whole inference product the rows loop keeps in the workspace pool rather than stream w_ih by
// chunks (forward_impl, stream_w_ih)
constexpr int64_t kWholeGatesPooledBytes = int64_t(256) << 20;

// [first, last) of part p of `total` units split into `parts` runs of whole 16-unit blocks (some may be empty)
inline std::pair<int64_t, int64_t> slice_of(int64_t total, int p, int parts) {
  const int64_t blocks = (total + 15) / 16;
  const int64_t b0 = blocks * p / parts, b1 = blocks * (p + 1) / parts;
  return {std::min(total, b0 * 16), std::min(total, b1 * 16)};
}

// How the partitioned loop splits the work. Batch rows are independent of each other, so with enough rows per
// thread each thread runs the whole time loop on its own sequences with no barrier at all (`by_rows`); with few rows
// the threads split the hidden units instead and meet at a barrier per step (each reads only its slice of the
// weights). `threads` 0: the per-step loop. LSTMKIT_CPP_LOOP=steps|units|rows forces one (for comparisons).
struct LoopPlan {
  int threads = 0;
  bool by_rows = false;
};
// `whole_rows`: the call needs whole rows per thread (layer norm), so split by rows whatever the weights' size
inline LoopPlan plan_loop(int64_t batch, int64_t H, int64_t P, int64_t element_bytes, bool whole_rows = false) {
  const char* forced = std::getenv("LSTMKIT_CPP_LOOP");  // read per call (a few ns): one process can compare them
  const std::string mode = forced != nullptr ? forced : "";
  if (mode == "steps") return {};
  const int64_t threads = std::max(1, at::get_num_threads());
  const bool small_weights = 4 * H * P * element_bytes <= kRowsWeightBytes;
  const bool by_rows = mode == "rows" || (mode != "units" && (small_weights || whole_rows) && batch >= threads);
  const int64_t parts = by_rows ? std::min(threads, batch) : std::min(threads, (H + 15) / 16);
  return {static_cast<int>(std::max<int64_t>(1, parts)), by_rows};
}

// Which loop the last forward and backward call took (0 steps, 1 units, 2 rows): read by the tests through
// _C.last_loops(), so that a test of the rows loop fails if a call quietly falls back to another
std::atomic<int> last_forward_loop{-1}, last_backward_loop{-1};
std::atomic<int64_t> last_dz_rows{-1}, last_gate_rows{-1};
// rows of d(x W_ih^T) and d(R h) per chunk when the last backward call added dW_ih, dW_hh and dx up chunk by chunk in
// the rows loop (backward_impl, "in-loop weight gradients"); 0 when it made them after the loop (tests)
std::atomic<int64_t> last_dw_chunk_rows{-1};
std::atomic<int> last_gate_products{-1};  // per-step products of h W_hh^T a thread made in the partitioned forward
inline int loop_code(const LoopPlan& plan) { return plan.threads == 0 ? 0 : plan.by_rows ? 2 : 1; }

// Layer norm of R h and of c normalises whole rows: the rows loop holds them (each thread owns whole batch rows),
// also where W_hh exceeds a core's L2 (H > 256 in float32): each thread streaming all of W_hh per step there beat the
// per-step loop's ATen passes and fork/joins by far (layer norm at T=35 B=16 H=512, eval: 12.6 vs 18.3 ms, where a
// plain layer's units loop takes 10.4 ms; benchmarks/RESULTS.md, "Session 8: layer norm's forward in the rows
// loop"). A forward without a workspace (inference, `ln_units`) can also normalise in the units loop, which splits a
// row's units over threads: each thread sums its own part of a row and the threads merge the parts after a barrier
// (units_moments), so it takes the loop a plain layer takes, but where each thread has kLayerNormRowsPerThread rows
// or more and W_hh is at most kLayerNormRowsWeightBytes: there the rows loop's stream of W_hh hides behind its GEMM
// and the units loop's extra barriers and passes cost more (operator's eval forward, all three layer norms, 2
// threads: T=35 H=512 B=16 10.9 ms units / 12.6 ms rows, B=24 15.2 / 16.2, B=32 20.1 / 20.0, B=64 38.9 / 35.9;
// H=1024 B=64 126.8 / 139.2; benchmarks/RESULTS.md, "Session 9: layer norm's inference at H >= 512"). Training
// keeps whole rows (the backward has no units-loop layer norm), so there the units loop (forced, or fewer rows
// than threads) falls back to the per-step loop
constexpr int64_t kLayerNormRowsPerThread = 32, kLayerNormRowsWeightBytes = int64_t(4) << 20;
template <typename S>
LoopPlan plan_for(int64_t batch, int64_t H, int64_t P, bool layer_norm, bool ln_units = false) {
  if (!partition_blas<S>()) return {};
  const int64_t threads = std::max(1, at::get_num_threads());
  const bool rows_better = 4 * H * P * static_cast<int64_t>(sizeof(S)) <= kLayerNormRowsWeightBytes &&
                           batch >= kLayerNormRowsPerThread * threads;
  const bool whole_rows = layer_norm && (!ln_units || rows_better);
  const LoopPlan plan = plan_loop(batch, H, P, sizeof(S), whole_rows);
  return layer_norm && !ln_units && !plan.by_rows ? LoopPlan{} : plan;
}

// [first, last) of part p of `total` rows split evenly
inline std::pair<int64_t, int64_t> rows_of(int64_t total, int p, int parts) {
  return {total * p / parts, total * (p + 1) / parts};
}

// Waits until ready() holds: spins briefly (the other thread is usually microseconds away), then yields the core,
// so a thread whose team mate was descheduled does not burn the time slice it needs.
template <class Ready>
inline void spin_until(const Ready& ready) {
  for (int spin = 0; !ready(); ++spin) {
    if (spin < 4000) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }
}

// Sense-free barrier on a generation counter, waiting with spin_until.
struct SpinBarrier {
  std::atomic<int> arrived{0};
  std::atomic<int> generation{0};
  int parties = 1;
  void wait() {
    if (parties <= 1) return;
    const int gen = generation.load(std::memory_order_acquire);
    if (arrived.fetch_add(1, std::memory_order_acq_rel) == parties - 1) {
      arrived.store(0, std::memory_order_relaxed);
      generation.fetch_add(1, std::memory_order_release);
      return;
    }
    spin_until([&] { return generation.load(std::memory_order_acquire) != gen; });
  }
};


// ------------------------------------------------------------------------------------------------ workspace pool
//
// glibc serves a block above its mmap threshold (dynamic, at most 32 MiB) with fresh pages and unmaps it on free,
// and trims free memory above its trim threshold at the top of its heap: a large buffer allocated on every call
// page-faults (and is zeroed by the kernel) on every call. At T=200 B=64 H=128 a training step with every variant
// allocates about 100 MB of workspace of tens of MB each (benchmarks/RESULTS.md, "Session 8: large workspaces and
// fresh pages"). The kernels' large buffers therefore come from a small pool: a buffer of the bytes asked for (up to
// a quarter more: the smallest such, so that lengths that vary a little between batches still find one; the
// tensor is then a view of the first bytes) is handed out again only when nothing but the pool holds its storage
// (use_count() == 1: no tensor, view, saved workspace or user's output refers to it), so a buffer still referenced
// is never shared. Bounded: a request
// that matches no idle buffer first frees idle ones, least recently handed out first, until the pool holds no more
// idle bytes than the most bytes it ever had in use at once (a training loop repeats its sizes and stops missing
// once warm; shapes that change every call, e.g. variable sequence lengths, leave at most one such peak idle, not a
// pile), and at most kPoolCapBytes are held in all (a request beyond it gets an ordinary allocation). Only requests
// of kPoolMinBytes or more are pooled. (Freeing every idle buffer at a miss was tried: a bfloat16 training step whose
// forward and backward ask for different sizes then freed the other half's buffers at every step, 14 misses of 20
// requests.)
// LSTMKIT_WORKSPACE_POOL=0 turns it off (read per call); _C.workspace_pool_clear() frees the idle buffers
// (lstmkit.runtime.release_workspaces). It changes nothing of malloc's settings.
constexpr int64_t kPoolMinBytes = int64_t(1) << 20, kPoolCapBytes = int64_t(2) << 30;

struct WorkspacePool {
  struct Entry {
    c10::Storage storage;
    int64_t bytes = 0;
    uint64_t last = 0;  // tick of the last hand-out
  };
  std::mutex mu;
  std::vector<Entry> entries;
  uint64_t tick = 0;
  int64_t held = 0, hits = 0, misses = 0, busy_peak = 0;  // busy_peak: most bytes in use at once (reset by clear)
  // frees entries no tensor refers to, least recently handed out first, until at most `keep_idle` idle bytes are left
  // (caller holds mu)
  void drop_idle(int64_t keep_idle) {
    std::vector<size_t> idle;
    int64_t idle_bytes = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].storage.use_count() == 1) idle.push_back(i), idle_bytes += entries[i].bytes;
    }
    std::sort(idle.begin(), idle.end(), [&](size_t a, size_t b) { return entries[a].last < entries[b].last; });
    std::vector<bool> drop(entries.size(), false);
    for (const size_t i : idle) {
      if (idle_bytes <= keep_idle) break;
      drop[i] = true;
      idle_bytes -= entries[i].bytes;
      held -= entries[i].bytes;
    }
    std::vector<Entry> kept;
    for (size_t i = 0; i < entries.size(); ++i)
      if (!drop[i]) kept.push_back(std::move(entries[i]));
    entries = std::move(kept);
  }
  int64_t idle_bytes() const {
    int64_t n = 0;
    for (const auto& e : entries) n += e.storage.use_count() == 1 ? e.bytes : 0;
    return n;
  }
};
WorkspacePool& workspace_pool() {
  static WorkspacePool* pool = new WorkspacePool();  // never destroyed: no tensor freed after torch at exit
  return *pool;
}
bool pool_enabled() {
  const char* v = std::getenv("LSTMKIT_WORKSPACE_POOL");
  return v == nullptr || (std::string(v) != "0" && std::string(v) != "off");
}

// at::empty(shape, opts), from the pool when large (see above)
Tensor pooled_empty(at::IntArrayRef shape, const at::TensorOptions& opts) {
  const int64_t bytes = c10::multiply_integers(shape) * static_cast<int64_t>(c10::elementSize(opts.dtype().toScalarType()));
  if (bytes < kPoolMinBytes || !pool_enabled()) return at::empty(shape, opts);
  WorkspacePool& pool = workspace_pool();
  std::lock_guard<std::mutex> lock(pool.mu);
  ++pool.tick;
  c10::Storage storage;
  WorkspacePool::Entry* best = nullptr;  // the smallest idle buffer of bytes to 1.25 bytes (sequence lengths vary)
  for (auto& e : pool.entries) {
    if (e.bytes >= bytes && e.bytes <= bytes + bytes / 4 && (best == nullptr || e.bytes < best->bytes) &&
        e.storage.use_count() == 1)
      best = &e;
  }
  if (best != nullptr) {
    best->last = pool.tick;
    storage = best->storage;
    ++pool.hits;
  }
  if (!storage) {
    ++pool.misses;
    pool.drop_idle(pool.busy_peak);
    Tensor fresh = at::empty({bytes}, opts.dtype(at::kByte));
    if (pool.held + bytes > kPoolCapBytes) return fresh.view(opts.dtype().toScalarType()).view(shape);
    storage = fresh.storage();
    pool.entries.push_back({storage, bytes, pool.tick});
    pool.held += bytes;
  }
  pool.busy_peak = std::max(pool.busy_peak, pool.held - pool.idle_bytes());  // (`storage` counts as in use)
  return at::empty({0}, opts).set_(storage, 0, shape, c10::contiguous_strides(shape));
}

// t in dtype (t itself when it is already), the copy from the pool when large
Tensor pooled_to(const Tensor& t, at::ScalarType dtype) {
  if (!t.defined() || t.scalar_type() == dtype) return t;
  Tensor out = pooled_empty(t.sizes(), t.options().dtype(dtype));
  out.copy_(t);
  return out;
}

// ------------------------------------------------------------------------------------------------ forward pass

// Layer norm's row statistics in the units loop, where each thread holds its own units' columns of a row: each sums
// its part (part_moments, below: count, mean and sum of squared deviations), the threads meet at a barrier, and each
// merges every part (merge_moments: Chan, Golub and LeVeque's pairwise update, no cancellation between the parts)
// into the row's mean and 1 / sqrt(variance + eps).
// parts[k * stride + {0, 1, 2}] for k < parts: merged into the row's mean and rstd
inline void merge_moments(const double* parts, int64_t stride, int count, double& mean, double& rstd) {
  double n = 0, m = 0, dev = 0;
  for (int k = 0; k < count; ++k) {
    const double* q = parts + k * stride;
    if (q[0] <= 0) continue;
    const double total = n + q[0], d = q[1] - m;
    m += d * q[0] / total;
    dev += q[2] + d * d * n * q[0] / total;
    n = total;
  }
  mean = m;
  rstd = 1.0 / std::sqrt((n > 0 ? dev / n : 0.0) + kLayerNormEps);
}

template <typename S>
struct ForwardStep {
  using R = typename Num<S>::raw;
  using A = typename Num<S>::acc;
  int64_t H = 0, P = 0;
  R* gates = nullptr;          // step rows (n, 4H): pre-activations in (without the bias), activated gates out
  const R* bias = nullptr;     // (4H) b_ih + b_hh, added here (zeros when the gates already hold it)
  const A* c_buf = nullptr;    // (N + B, H) cells, accumulation type
  const A* c_prev = nullptr;   // (n, H) previous cells of this step's rows when they are contiguous, else null
  A* c_out = nullptr;          // step rows (n, H) of c_buf: the carried cell
  R* c_new = nullptr;          // (n, H) new cell before zoneout (zoneout of c)
  R* tanh_c = nullptr;         // (n, H)
  R* h_out = nullptr;          // (n, P) h, or (n, H) h_raw with a projection
  const R* h_buf = nullptr;    // (N + B, P) previous h for zoneout of h
  const R* peephole = nullptr; // (3, H)
  const R* zh = nullptr; int64_t zh_stride = 0;  // zoneout of h: rows of this step, or one row of p (stride 0)
  const R* zc = nullptr; int64_t zc_stride = 0;
  const R* ln_c_w = nullptr; const R* ln_c_b = nullptr;
  R* stats_c = nullptr; int64_t stats_stride = 0;  // (2, N) row 0 mean, row 1 rstd; this step's first row
  // layer norm of c in the units loop (each thread holds units [j0, j1) of a row): phase 1 runs the first sweep and
  // writes this thread's part of each row's moments (count, mean, sum of squared deviations at c_parts + part *
  // parts_stride + b * parts_row), phase 2 merges all `parts` parts and runs the second sweep; phase 0: whole rows
  int phase = 0, part = 0, parts = 1;
  double* c_parts = nullptr; int64_t parts_stride = 0, parts_row = 0;
  A clip = std::numeric_limits<A>::infinity();
  const Schedule* sched = nullptr;
  int64_t t = 0;
};

// One row of one step in two sweeps over its H units, the row still in L1: (1) i, f, g and the new cell,
// (2) o, tanh of the (normalised) cell and h. One sweep doing everything measured 3.4x slower (GCC runs out of
// vector registers with five activations in one loop body).
template <typename S, bool PEEP, bool ZH, bool ZC, bool LNC, bool PROJ>
void forward_rows(const ForwardStep<S>& a, int64_t begin, int64_t end, int64_t j0, int64_t j1) {
  using A = typename Num<S>::acc;
  const int64_t H = a.H;
  const A clip = a.clip;  // locals: stores through the row pointers could alias the struct's fields
  const auto* peep = a.peephole;
  const auto* ln_w = a.ln_c_w;
  const auto* ln_b = a.ln_c_b;
  const auto* bias = a.bias;
  for (int64_t b = begin; b < end; ++b) {
    auto* z = a.gates + b * 4 * H;
    const A* c_prev = a.c_prev != nullptr ? a.c_prev + b * H : a.c_buf + a.sched->prev_row(a.t, b) * H;
    A* c_out = a.c_out + b * H;
    auto* tc = a.tanh_c + b * H;
    auto* h = a.h_out + b * (PROJ ? H : a.P);
    const auto* h_prev = a.h_buf + a.sched->prev_row(a.t, b) * a.P;
    const auto* zh = a.zh + b * a.zh_stride;
    const auto* zc = a.zc + b * a.zc_stride;
    // the new cell before zoneout: c_new's row with zoneout of c, else the carried cell itself
    auto* c_new = a.c_new + b * H;
    A sum = 0;
    const int64_t first = LNC && a.phase == 2 ? j1 : j0;  // phase 2: the first sweep ran in phase 1
#pragma omp simd reduction(+ : sum)
    for (int64_t j = first; j < j1; ++j) {
      A zi = load(z, j) + load(bias, j), zf = load(z, H + j) + load(bias, H + j);
      const A cp = c_prev[j];
      if constexpr (PEEP) {
        zi += load(peep, j) * cp;
        zf += load(peep, H + j) * cp;
      }
      A i, f;
      sigmoid2(zi, zf, i, f);
      const A g = tanh_(static_cast<A>(load(z, 2 * H + j) + load(bias, 2 * H + j)));
      const A c = clamp(f * cp + i * g, -clip, clip);
      store(z, j, i);
      store(z, H + j, f);
      store(z, 2 * H + j, g);
      if constexpr (ZC) {
        store(c_new, j, c);
        c_out[j] = lerp(c, cp, static_cast<A>(load(zc, j)));
      } else {
        c_out[j] = c;
      }
      if constexpr (LNC) sum += c;
    }
    A mean = 0, rstd = 0;
    if constexpr (LNC) {
      if (a.phase == 1) {  // units loop: this thread's part of the row's moments, merged after a barrier
        const A n = static_cast<A>(j1 - j0), m = j1 > j0 ? sum / n : A(0);
        A dev = 0;
#pragma omp simd reduction(+ : dev)
        for (int64_t j = j0; j < j1; ++j) {
          const A c = ZC ? static_cast<A>(load(c_new, j)) : c_out[j];
          dev += (c - m) * (c - m);
        }
        double* out = a.c_parts + a.part * a.parts_stride + b * a.parts_row;
        out[0] = static_cast<double>(j1 - j0), out[1] = m, out[2] = dev;
        continue;
      }
    }
    if (LNC && a.phase == 2) {
      double mm, rs;
      merge_moments(a.c_parts + b * a.parts_row, a.parts_stride, a.parts, mm, rs);
      mean = static_cast<A>(mm), rstd = static_cast<A>(rs);
      if (j0 == 0) {
        store(a.stats_c, b, mean);
        store(a.stats_c, a.stats_stride + b, rstd);
      }
    } else if constexpr (LNC) {
      mean = sum / static_cast<A>(H);
      A var = 0;
#pragma omp simd reduction(+ : var)
      for (int64_t j = 0; j < H; ++j) {
        const A c = ZC ? static_cast<A>(load(c_new, j)) : c_out[j];
        var += (c - mean) * (c - mean);
      }
      rstd = A(1) / std::sqrt(var / static_cast<A>(H) + static_cast<A>(kLayerNormEps));
      store(a.stats_c, b, mean);
      store(a.stats_c, a.stats_stride + b, rstd);
    }
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) {
      const A c = ZC ? static_cast<A>(load(c_new, j)) : c_out[j];
      A zo = load(z, 3 * H + j) + load(bias, 3 * H + j);
      if constexpr (PEEP) zo += load(peep, 2 * H + j) * c;
      A o, th;
      if constexpr (LNC) sigmoid_tanh(zo, (c - mean) * rstd * load(ln_w, j) + load(ln_b, j), o, th);
      else sigmoid_tanh(zo, c, o, th);
      store(z, 3 * H + j, o);
      store(tc, j, th);
      A hv = o * th;
      if constexpr (ZH && !PROJ) hv = lerp(hv, static_cast<A>(load(h_prev, j)), static_cast<A>(load(zh, j)));
      store(h, j, hv);
    }
  }
}

template <typename S>
using ForwardFn = void (*)(const ForwardStep<S>&, int64_t, int64_t, int64_t, int64_t);

// compile-time specialisation per variant combination: 32 instances per dtype, chosen once per call
template <typename S>
ForwardFn<S> pick_forward(bool peep, bool zh, bool zc, bool lnc, bool proj) {
  ForwardFn<S> table[32] = {
#define F(i) &forward_rows<S, (i & 16) != 0, (i & 8) != 0, (i & 4) != 0, (i & 2) != 0, (i & 1) != 0>
      F(0),  F(1),  F(2),  F(3),  F(4),  F(5),  F(6),  F(7),  F(8),  F(9),  F(10), F(11), F(12), F(13), F(14), F(15),
      F(16), F(17), F(18), F(19), F(20), F(21), F(22), F(23), F(24), F(25), F(26), F(27), F(28), F(29), F(30), F(31),
#undef F
  };
  return table[(peep << 4) | (zh << 3) | (zc << 2) | (lnc << 1) | int(proj)];
}

// LN over R h (one row of 4H) then added to the gates' input part: gates += LN(rh) (stats into stats_hh)
template <typename S>
void add_normed_rows(typename Num<S>::raw* gates, const typename Num<S>::raw* rh, const typename Num<S>::raw* w,
                     const typename Num<S>::raw* bias, typename Num<S>::raw* stats, int64_t stats_stride,
                     int64_t G, int64_t begin, int64_t end) {
  using A = typename Num<S>::acc;
  for (int64_t b = begin; b < end; ++b) {
    const auto* r = rh + b * G;
    auto* z = gates + b * G;
    A sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < G; ++j) sum += load(r, j);
    const A mean = sum / static_cast<A>(G);
    A var = 0;
#pragma omp simd reduction(+ : var)
    for (int64_t j = 0; j < G; ++j) var += (load(r, j) - mean) * (load(r, j) - mean);
    const A rstd = A(1) / std::sqrt(var / static_cast<A>(G) + static_cast<A>(kLayerNormEps));
    store(stats, b, mean);
    store(stats, stats_stride + b, rstd);
#pragma omp simd
    for (int64_t j = 0; j < G; ++j) store(z, j, load(z, j) + (load(r, j) - mean) * rstd * load(w, j) + load(bias, j));
  }
}

// Layer norm's row statistics (mean, 1 / sqrt(variance + eps)) of n values, summed in double: an ill-conditioned
// float32 case (tests/export/test_onnx.py "everything": H = 16, layer norm of c) amplifies every rounding upstream
// of it, and float sums here moved it past that test's bound (benchmarks/RESULTS.md, "Session 7: variants at
// H = 128"). Float32 rows: one pass of the sum and the sum of squares in double (a float's square is exact in
// double, and E[x^2] - mean^2 then cancels only below float32's own rounding unless mean^2 / variance > 1e5), in
// kMomentLanes independent partial sums (one running sum took ~4 cycles a vector, the add's latency). Float64 rows:
// the mean, then the mean square of the values less the mean (two passes; a row is in L1).
constexpr int64_t kMomentLanes = 32;

// The sum and the sum of squares of float32 (or bfloat16) values in double, in kMomentLanes partial sums; add() may
// be called for several runs of one row (the units loop's four gate blocks), total() adds the lanes up
struct MomentSums {
  double s[kMomentLanes] = {}, q[kMomentLanes] = {};
  double tail_sum = 0, tail_sq = 0;
  template <typename R>
  void add(const R* v, int64_t n) {
    int64_t j = 0;
    for (; j + kMomentLanes <= n; j += kMomentLanes) {
#pragma omp simd
      for (int64_t k = 0; k < kMomentLanes; ++k) {
        const double x = load(v, j + k);
        s[k] += x;
        q[k] += x * x;
      }
    }
    for (; j < n; ++j) {
      const double x = load(v, j);
      tail_sum += x;
      tail_sq += x * x;
    }
  }
  void total(double& sum, double& sq) const {
    sum = tail_sum, sq = tail_sq;
    for (int64_t k = 0; k < kMomentLanes; ++k) sum += s[k], sq += q[k];
  }
};

template <typename R>
inline void row_moments(const R* r, int64_t n, double& mean, double& rstd) {
  double var;
  if constexpr (std::is_same_v<R, double>) {
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) sum += r[j];
    mean = sum / static_cast<double>(n);
    double sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < n; ++j) sq += (r[j] - mean) * (r[j] - mean);
    var = sq / static_cast<double>(n);
  } else {
    MomentSums sums;
    sums.add(r, n);
    double sum, sq;
    sums.total(sum, sq);
    mean = sum / static_cast<double>(n);
    var = std::max(sq / static_cast<double>(n) - mean * mean, 0.0);
  }
  rstd = 1.0 / std::sqrt(var + kLayerNormEps);
}

// A thread's part of a row's moments for merge_moments (units loop): `runs` runs of n values each, `stride` apart (the
// row's four gate blocks of the thread's units), out = (count, mean, sum of squared deviations). Float32 values are
// summed in double in one pass as row_moments does (in kMomentLanes partial sums: one running sum per vector was
// bound by the add's latency), float64 in two passes.
template <typename R>
inline void part_moments(const R* r, int64_t runs, int64_t stride, int64_t n, double* out) {
  const double count = static_cast<double>(runs * n);
  double mean = 0, dev = 0;
  if (count > 0) {
    if constexpr (std::is_same_v<R, double>) {
      double sum = 0;
      for (int64_t k = 0; k < runs; ++k) {
        const R* v = r + k * stride;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < n; ++j) sum += v[j];
      }
      mean = sum / count;
      for (int64_t k = 0; k < runs; ++k) {
        const R* v = r + k * stride;
#pragma omp simd reduction(+ : dev)
        for (int64_t j = 0; j < n; ++j) dev += (v[j] - mean) * (v[j] - mean);
      }
    } else {
      MomentSums sums;
      for (int64_t k = 0; k < runs; ++k) sums.add(r + k * stride, n);
      double sum, sq;
      sums.total(sum, sq);
      mean = sum / count;
      dev = std::max(sq - sum * mean, 0.0);
    }
  }
  out[0] = count, out[1] = mean, out[2] = dev;
}

// Layer norm of x W_ih^T in the rows loop: each thread normalises its own rows of a step just before the step reads
// them, still in cache, instead of at::native_layer_norm over all (N, 4H) rows before the loop (a fresh (N, 4H)
// tensor, a bias pass and a stack of the statistics). With layer norm of R h too (`rh` not null) both are added in
// the same pass: z = LN(xp) w_x + LN(rh) w_h + shift, where shift = both LNs' biases + b_ih + b_hh; without it,
// z = LN(xp) w_x + shift and the step's GEMM adds R h after. `z` may be `xp` itself (a call without a workspace
// normalises in place); statistics (mean, rstd) into stats_x (stride sx) and stats_h (stride sh) when not null.
template <typename S>
void normed_input_rows(typename Num<S>::raw* z, const typename Num<S>::raw* xp, const typename Num<S>::raw* w_x,
                       const typename Num<S>::raw* rh, const typename Num<S>::raw* w_h,
                       const typename Num<S>::raw* shift, typename Num<S>::raw* stats_x, int64_t sx,
                       typename Num<S>::raw* stats_h, int64_t sh, int64_t G, int64_t begin, int64_t end) {
  using A = typename Num<S>::acc;
  for (int64_t b = begin; b < end; ++b) {
    const auto* x = xp + b * G;
    auto* out = z + b * G;
    double m, rs;
    row_moments(x, G, m, rs);
    const A mx = static_cast<A>(m), rx = static_cast<A>(rs);
    if (stats_x != nullptr) {
      store(stats_x, b, mx);
      store(stats_x, sx + b, rx);
    }
    if (rh == nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < G; ++j) store(out, j, (load(x, j) - mx) * rx * load(w_x, j) + load(shift, j));
      continue;
    }
    const auto* r = rh + b * G;
    row_moments(r, G, m, rs);
    const A mh = static_cast<A>(m), rr = static_cast<A>(rs);
    store(stats_h, b, mh);
    store(stats_h, sh + b, rr);
#pragma omp simd
    for (int64_t j = 0; j < G; ++j)
      store(out, j, (load(x, j) - mx) * rx * load(w_x, j) + (load(r, j) - mh) * rr * load(w_h, j) + load(shift, j));
  }
}

// Layer norm in the units loop (inference): one row's own gate columns (4 blocks of units [j0, j1)) with the row's
// statistics merged from every thread's part: z = LN(z) w_x (or z) + LN(r) w_h (or r) + shift, w_x / w_h null where
// that input is not normalised; `z` holds x W_ih^T, `r` R h_{t-1}
template <typename S>
void normed_units(typename Num<S>::raw* z, const typename Num<S>::raw* r, const typename Num<S>::raw* w_x, double mx,
                  double rx, const typename Num<S>::raw* w_h, double mh, double rh, const typename Num<S>::raw* shift,
                  int64_t H, int64_t j0, int64_t j1) {
  using A = typename Num<S>::acc;
  const A ax = static_cast<A>(mx), bx = static_cast<A>(rx), ah = static_cast<A>(mh), bh = static_cast<A>(rh);
  for (int64_t k = 0; k < 4; ++k) {
    const int64_t lo = k * H + j0, hi = k * H + j1;
    if (w_x != nullptr && w_h != nullptr) {
#pragma omp simd
      for (int64_t j = lo; j < hi; ++j)
        store(z, j, (load(z, j) - ax) * bx * load(w_x, j) + (load(r, j) - ah) * bh * load(w_h, j) + load(shift, j));
    } else if (w_x != nullptr) {
#pragma omp simd
      for (int64_t j = lo; j < hi; ++j) store(z, j, (load(z, j) - ax) * bx * load(w_x, j) + load(r, j) + load(shift, j));
    } else {
#pragma omp simd
      for (int64_t j = lo; j < hi; ++j) store(z, j, load(z, j) + (load(r, j) - ah) * bh * load(w_h, j) + load(shift, j));
    }
  }
}

Tensor contig(const optional<Tensor>& t) { return t.has_value() && t->defined() ? t->contiguous() : Tensor(); }

template <typename S>
std::vector<Tensor> forward_impl(
    const Tensor& x_in, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
    const optional<Tensor>& b_ih, const optional<Tensor>& b_hh, const optional<Tensor>& w_hr_opt,
    const optional<Tensor>& batch_sizes, bool reverse, const optional<Tensor>& peephole_opt,
    const optional<Tensor>& ln_ih_w, const optional<Tensor>& ln_ih_b, const optional<Tensor>& ln_hh_w_opt,
    const optional<Tensor>& ln_hh_b_opt, const optional<Tensor>& ln_c_w_opt, const optional<Tensor>& ln_c_b_opt,
    const optional<Tensor>& rec_mask_opt, const optional<Tensor>& zh_mask, const optional<Tensor>& zc_mask,
    double zoneout_h, double zoneout_c, optional<double> cell_clip, bool need_ws, bool round_h = false) {
  // round_h: round every GEMM operand computed here (h, h_raw, h * mask) to bfloat16 (float32 only; see the header)
  using A = typename Num<S>::acc;
  const auto acc_dtype = c10::CppTypeToScalarType<A>::value;
  const int64_t batch = h0.size(0), P = h0.size(1), H = c0.size(1), G = 4 * H;
  const Schedule s = make_schedule(x_in, batch_sizes, batch, reverse);
  const int64_t N = s.total;
  const Tensor x = x_in.reshape({N, x_in.size(-1)});
  const Tensor w_hr = contig(w_hr_opt);
  const bool proj = w_hr.defined();
  const Tensor peephole = contig(peephole_opt);
  const Tensor ln_hh_w = contig(ln_hh_w_opt), ln_hh_b = contig(ln_hh_b_opt);
  const Tensor ln_c_w = contig(ln_c_w_opt), ln_c_b = contig(ln_c_b_opt);
  const Tensor rec_mask = contig(rec_mask_opt);
  const bool zoning_h = (zh_mask.has_value() && zh_mask->defined()) || zoneout_h > 0;
  const bool zoning_c = (zc_mask.has_value() && zc_mask->defined()) || zoneout_c > 0;
  const auto opts = x.options();

  // the input GEMM for all steps
  Tensor bias;
  if (b_ih.has_value() && b_hh.has_value()) bias = *b_ih + *b_hh;
  else if (b_ih.has_value()) bias = *b_ih;
  else if (b_hh.has_value()) bias = *b_hh;
  Tensor gates, x_proj, stats_ih;
  // w_ih.T as a view: MKL reads it transposed in place at the speed of a contiguous copy (Intel host, 2 threads:
  // 15.7 vs 16.7 ms at T=35 B=64 H=512), while ATen's strided copy of a (4096, 1024) w_ih.T took ~10 ms
  // (benchmarks/RESULTS.md, "Transposed weight copies (session 6)")
  Tensor w_ih_t = w_ih.t();
  // the loop (partitioned, see below; with layer norm of R h or c only when split by rows)
  const bool ln_rows = ln_hh_w.defined() || ln_c_w.defined();
  const LoopPlan plan = plan_for<S>(batch, H, P, ln_rows, !need_ws);
  last_forward_loop.store(loop_code(plan), std::memory_order_relaxed);
  // inference with layer norm of R h or c in the units loop: each thread normalises its own units' columns with
  // statistics merged from every thread's part after a barrier (units_moments, below)
  const bool ln_units = ln_rows && plan.threads > 0 && !plan.by_rows;
  // layer norm of x W_ih^T: in the rows loop, per step on each thread's own rows (normed_input_rows), and with
  // ln_units per step on its own columns; in the others, all rows before the loop
  const bool ln_ih_rows =
      ln_ih_w.has_value() && ln_ih_w->defined() && plan.threads > 0 && (plan.by_rows || ln_units);
  // inference: the input GEMM by chunks of steps (kChunkGatesBytes), 0: whole; with layer norm of the input only in
  // the rows loop, which normalises each step's rows in place (the other loops normalise all rows at once)
  int64_t gate_chunk_steps = 0;
  if (!need_ws && (!ln_ih_w.has_value() || ln_ih_rows) && N > 0) {
    const char* forced = std::getenv("LSTMKIT_GATES_CHUNK");  // rows per chunk, for comparisons (0: whole)
    const int64_t row_bytes = G * static_cast<int64_t>(sizeof(typename Num<S>::raw));
    // the rows loop's chunks multiply each thread's rows of a step by all of w_ih, packed per call: beyond a core's
    // L2 (kRowsWeightBytes) that stream and packing cost more than the whole product's traffic unless the product
    // would be fresh pages (above kChunkDzAboveBytes; layer norm at T=35 B=64 H=512: 38.5 -> 36.9 ms; benchmarks/
    // RESULTS.md, "Session 9: layer norm's inference at H >= 512"). With the workspace pool the whole product is
    // fresh pages only on the first call (the pool hands the buffer back), so it stays whole up to
    // kWholeGatesPooledBytes (layer norm at T=200 B=64 H=512, 105 MB: 205 -> 200 ms; "Session 10: eval after
    // training")
    const int64_t product_bytes = N * row_bytes;
    const bool stream_w_ih = plan.threads > 0 && plan.by_rows &&
                             G * x.size(1) * static_cast<int64_t>(sizeof(S)) > kRowsWeightBytes &&
                             (product_bytes <= kChunkDzAboveBytes ||
                              (product_bytes <= kWholeGatesPooledBytes && pool_enabled()));
    const int64_t rows = forced != nullptr ? std::atoll(forced)
                         : (N * row_bytes > kChunkGatesBytes && !stream_w_ih ? kChunkGatesBytes / row_bytes : 0);
    if (rows > 0) gate_chunk_steps = std::max<int64_t>(1, rows / std::max<int64_t>(1, batch));
  }
  // inference by chunks: one chunk's rows, filled inside the time loop (batch rows per step of a chunk: the rows
  // loop's slots, below; padded input: min(N, chunk rows))
  if (gate_chunk_steps > 0) gates = pooled_empty({std::min<int64_t>(s.size.size(), gate_chunk_steps) * batch, G}, opts);
  Tensor ln_ih_in, ln_ih_w_c, ln_shift;  // rows loop: x W_ih^T (N, 4H), LN's gain, shift = LN biases + b (4H)
  if (ln_ih_rows) {
    if (gate_chunk_steps > 0) {  // each chunk's rows normalised in place
      ln_ih_in = gates;
    } else {
      ln_ih_in = pooled_empty({N, G}, opts);  // normalised in place without a workspace
      at::mm_out(ln_ih_in, x, w_ih_t);
      gates = need_ws ? pooled_empty({N, G}, opts) : ln_ih_in;
    }
    if (need_ws) x_proj = ln_ih_in, stats_ih = at::empty({2, N}, opts);
    ln_ih_w_c = ln_ih_w->contiguous();
    Tensor shift = at::zeros({G}, opts.dtype(at::kDouble));  // summed in double, rounded once
    auto add = [&](const optional<Tensor>& t) {
      if (t.has_value() && t->defined()) shift.add_(*t);
    };
    add(ln_ih_b);
    add(b_ih);
    add(b_hh);
    if (ln_hh_w.defined()) add(ln_hh_b_opt);  // added with LN(R h) in the same pass
    ln_shift = shift.to(x.scalar_type());
  } else if (ln_ih_w.has_value()) {
    // the other loops (the units loop, with layer norm of x W_ih^T alone, splits a row over threads; the per-step
    // loop: fewer batch rows than threads, native bfloat16, no BLAS): ATen's layer norm over all rows first
    x_proj = pooled_empty({N, G}, opts);
    at::mm_out(x_proj, x, w_ih_t);
    auto normed = at::native_layer_norm(x_proj, {G}, *ln_ih_w, ln_ih_b.has_value() ? *ln_ih_b : Tensor(), kLayerNormEps);
    gates = std::get<0>(normed);
    if (bias.defined()) gates.add_(bias);
    stats_ih = at::stack({std::get<1>(normed).view({-1}), std::get<2>(normed).view({-1})}).to(x.scalar_type());
  } else {
    // the bias is added by the row sweeps, which read the gates anyway: addmm(bias, ...) would first write the
    // bias into every row of the (N, 4H) result, a pass over it (4 % of inference at T=200 B=64 H=128)
    // (inference: for one chunk of steps at a time, allocated above and filled inside the time loop)
    if (gate_chunk_steps == 0) {
      gates = pooled_empty({N, G}, opts);
      at::mm_out(gates, x, w_ih_t);
    }
  }
  const Tensor sweep_bias = bias.defined() && !ln_ih_w.has_value() ? bias.contiguous() : at::zeros({G}, opts);
  last_gate_rows.store(gates.size(0), std::memory_order_relaxed);
  const Tensor w_ih_c = gate_chunk_steps > 0 ? w_ih.contiguous() : Tensor();
  // positions [lo, hi) of s.order in the chunk that starts at position lo, and their rows: [first, first + rows)
  const auto gate_chunk = [&](int64_t lo) {
    const int64_t hi = std::min<int64_t>(s.order.size(), lo + gate_chunk_steps);
    const int64_t a = s.order[lo], b = s.order[hi - 1];
    const int64_t first = std::min(s.offset[a], s.offset[b]);
    return std::make_tuple(hi, first, std::max(s.offset[a] + s.size[a], s.offset[b] + s.size[b]) - first);
  };

  const int64_t keep_rows = need_ws ? N : batch;  // everything for the backward, or one step's scratch
  Tensor h_buf = pooled_empty({N + batch, P}, opts);
  h_buf.narrow(0, N, batch).copy_(h0);
  // The cells: every step's rows for the backward (or packed input's final states), else two steps' rows used in
  // turn and the initial ones, which stay in cache (a call without a workspace reads each cell once, the next step)
  const bool cells_in_turn = !need_ws && s.uniform;
  const int64_t c_initial = cells_in_turn ? 2 * batch : N;  // row of c0 in c_buf
  Tensor c_buf = pooled_empty({c_initial + batch, H}, opts.dtype(acc_dtype));
  c_buf.narrow(0, c_initial, batch).copy_(c0);
  const int64_t steps_total = s.size.size();
  auto c_row = [&](int64_t t) {  // first row of step t's cells in c_buf
    if (!cells_in_turn) return s.offset[t];
    return ((reverse ? steps_total - 1 - t : t) % 2) * batch;
  };
  auto c_prev_row = [&](int64_t t) -> int64_t {  // first row of step t's previous cells, -1 if not contiguous
    if (!s.uniform) return -1;
    const int64_t nb = reverse ? t + 1 : t - 1;
    return nb >= 0 && nb < steps_total ? c_row(nb) : c_initial;
  };
  Tensor tanh_c = pooled_empty({keep_rows, H}, opts);
  Tensor h_raw = proj ? pooled_empty({keep_rows, H}, opts) : Tensor();
  Tensor c_new = zoning_c ? pooled_empty({keep_rows, H}, opts) : Tensor();
  // ln_units with layer norm of x W_ih^T or R h: R h apart from the gates, added when they are normalised
  const bool units_rh = ln_units && (ln_hh_w.defined() || ln_ih_rows);
  Tensor rh = ln_hh_w.defined() || units_rh ? pooled_empty({keep_rows, G}, opts) : Tensor();
  Tensor stats_hh = ln_hh_w.defined() ? at::empty({2, keep_rows}, opts) : Tensor();
  Tensor stats_c = ln_c_w.defined() ? at::empty({2, keep_rows}, opts) : Tensor();
  Tensor zh_rows, zc_rows, zh_const, zc_const;
  if (zoning_h) {
    if (zh_mask.has_value() && zh_mask->defined()) zh_rows = zh_mask->reshape({N, P}).contiguous();
    else zh_const = at::full({P}, zoneout_h, opts);
  }
  if (zoning_c) {
    if (zc_mask.has_value() && zc_mask->defined()) zc_rows = zc_mask->reshape({N, H}).contiguous();
    else zc_const = at::full({H}, zoneout_c, opts);
  }
  Tensor h_scratch = at::empty({batch, P}, opts);  // previous h gathered (reverse direction, packed input)
  Tensor h_masked = rec_mask.defined() ? at::empty({batch, P}, opts) : Tensor();  // h_prev * recurrent mask
  // w_hh.T and w_hr.T as views, no copies: the partitioned loop packs its weight slices from the rows of w_hh and
  // w_hr (MKL packs a transposed source), the per-step loop's BLAS reads them transposed in place
  const Tensor w_hh_c = w_hh.contiguous();
  const Tensor w_hh_t = w_hh_c.t(), w_hr_t = proj ? w_hr.t() : Tensor();

  ForwardStep<S> a;
  a.H = H;
  a.P = P;
  a.c_buf = c_buf.template data_ptr<A>();
  a.bias = ptr<S>(sweep_bias);
  a.h_buf = ptr<S>(h_buf);
  a.peephole = ptr<S>(peephole);
  a.ln_c_w = ptr<S>(ln_c_w);
  a.ln_c_b = ptr<S>(ln_c_b);
  if (cell_clip.has_value()) a.clip = static_cast<A>(*cell_clip);
  a.sched = &s;
  auto rows_fn = pick_forward<S>(peephole.defined(), zoning_h, zoning_c, ln_c_w.defined(), proj);

  // this step's pointers into the buffers (rows of step t; the kept rows are scratch without a workspace)
  auto set_step = [&](ForwardStep<S>& st, int64_t t, int64_t gate_row) {  // gate_row: step t's first row in gates
    const int64_t row = s.offset[t], keep = need_ws ? row : 0;
    st.t = t;
    st.gates = ptr<S>(gates) + gate_row * G;
    st.c_out = c_buf.template data_ptr<A>() + c_row(t) * H;
    const int64_t prev = c_prev_row(t);
    st.c_prev = prev >= 0 ? c_buf.template data_ptr<A>() + prev * H : nullptr;
    st.c_new = zoning_c ? ptr<S>(c_new) + keep * H : nullptr;
    st.tanh_c = ptr<S>(tanh_c) + keep * H;
    st.h_out = proj ? ptr<S>(h_raw) + keep * H : ptr<S>(h_buf) + row * P;
    if (zoning_h) {
      st.zh = zh_rows.defined() ? ptr<S>(zh_rows) + row * P : ptr<S>(zh_const);
      st.zh_stride = zh_rows.defined() ? P : 0;
    }
    if (zoning_c) {
      st.zc = zc_rows.defined() ? ptr<S>(zc_rows) + row * H : ptr<S>(zc_const);
      st.zc_stride = zc_rows.defined() ? H : 0;
    }
    if (ln_c_w.defined()) {
      st.stats_c = ptr<S>(stats_c) + keep;
      st.stats_stride = keep_rows;
    }
  };

  // the partitioned loop (one parallel region, see above)
  const int threads = plan.threads;
  if (threads > 0) {
    using R = typename Num<S>::raw;
    const int64_t steps = s.size.size();
    R* hb = ptr<S>(h_buf);
    R* gb = ptr<S>(gates);
    R* scratch = ptr<S>(h_scratch);
    R* hr = ptr<S>(h_raw);
    const R* whh = ptr<S>(w_hh_c);  // (4H, P)
    const R* whr = ptr<S>(w_hr);    // (P, H)
    const R* wih = ptr<S>(w_ih_c);  // (4H, I), inference by chunks only
    const R* xp = ptr<S>(x);
    const int64_t I = x.size(1);
    const R* mask = ptr<S>(rec_mask);
    R* rh_p = ptr<S>(rh);  // layer norm of R h (rows loop only): R h_{t-1} of the kept rows, then its statistics
    R* stats_hh_p = ptr<S>(stats_hh);
    const R* ln_hh_w_p = ptr<S>(ln_hh_w);
    const R* ln_hh_b_p = ptr<S>(ln_hh_b);
    const R* xp_p = ptr<S>(ln_ih_in);  // layer norm of x W_ih^T in this loop (ln_ih_rows)
    const R* ln_ih_w_p = ptr<S>(ln_ih_w_c);
    const R* shift_p = ptr<S>(ln_shift);
    R* stats_ih_p = ptr<S>(stats_ih);
    // ln_units: each thread's part of each row's moments (count, mean, squared deviations) of x W_ih^T, R h and c
    std::vector<double> units_moments(ln_units ? size_t(threads) * batch * 9 : 0);
    const bool units_ln_ih = ln_units && ln_ih_rows, units_ln_hh = ln_units && ln_hh_w.defined();
    const R* units_shift = units_ln_ih ? shift_p : ln_hh_b_p;  // added with the normalised columns
    // inference by chunks in the units loop: every thread's packed w_ih.T slices in one buffer from the workspace
    // pool, reused from call to call. Each thread's own aligned_alloc (4 MB a call at T=35 B=64 H=512, 16 MB at
    // H=1024) was fresh pages every call, glibc trimming the threads' heaps after each: 1,000-4,100 page faults a
    // call (benchmarks/RESULTS.md, "Session 11: eval cells after other cells"). w_in_at[p]: part p's first byte
    std::vector<int64_t> w_in_at;
    Tensor w_in_pool;
    if (gate_chunk_steps > 0 && !plan.by_rows) {
      const int64_t chunk_rows = std::min(N, gate_chunk_steps * batch);
      w_in_at.assign(threads + 1, 0);
      for (int p = 0; p < threads; ++p) {
        const auto [j0, j1] = slice_of(H, p, threads);
        const bool whole = j0 == 0 && j1 == H;
        int64_t bytes = 0;
        for (int64_t k = 0; k < (whole ? 1 : 4); ++k)
          bytes += StepOperand<R>::packed_bytes(I, whole ? G : j1 - j0, chunk_rows);
        w_in_at[p + 1] = w_in_at[p] + bytes;
      }
      if (w_in_at[threads] > 0) w_in_pool = pooled_empty({w_in_at[threads]}, opts.dtype(at::kByte));
    }
    SpinBarrier barrier;
#pragma omp parallel num_threads(threads)
    {
      const int parts = omp_get_num_threads(), p = omp_get_thread_num();
#pragma omp single
      barrier.parties = plan.by_rows ? 1 : parts;  // (the implicit barrier after `single` publishes it)
      const bool by_rows = plan.by_rows;
      // own hidden units, own columns of h (with a projection), own batch rows
      const auto [j0, j1] = by_rows ? std::pair<int64_t, int64_t>{0, H} : slice_of(H, p, parts);
      const auto [q0, q1] = by_rows ? std::pair<int64_t, int64_t>{0, P} : slice_of(P, p, parts);
      const auto [r0, r1] = by_rows ? rows_of(batch, p, parts) : std::pair<int64_t, int64_t>{0, batch};
      ForwardStep<S> st = a;
      // this thread's slices of the weights, packed once: w_hh.T's four gate column blocks (one block when the
      // thread owns every unit) and w_hr.T's columns of h
      const bool whole = j0 == 0 && j1 == H;
      PackArena* arena = pack_arena();
      if (arena != nullptr) arena->begin();
      StepOperand<R> w_gate[4], w_proj;
      // the units loop (not with layer norm, whose steps keep four products): the thread's four gate blocks of w_hh
      // gathered into one (4u, P) operand, so that each step makes its part of h_{t-1} W_hh^T in one product (into
      // `own_z`, added to its gate columns of z below) rather than four of a quarter the width each (2 threads, T=35 B=16 H=512: the 35 steps' products alone 4.0
      // against 4.9 ms, the whole forward 10.20 -> 9.98 ms; benchmarks/RESULTS.md "Session 9: the GEMM floor")
      const int64_t u = j1 - j0;
      ArenaBlock gathered, own_z_block;
      const bool joined = !whole && !by_rows && !ln_units && u > 0 && rh_p == nullptr &&
                          4 * u * P * static_cast<int64_t>(sizeof(R)) <= kJoinedGateBytes && joined_gate_product() &&
                          gathered.get(arena, 4 * u * P * sizeof(R)) && own_z_block.get(arena, batch * 4 * u * sizeof(R));
      R* own_z = joined ? static_cast<R*>(own_z_block.data) : nullptr;  // (rows, 4u): i f g o of own units
      if (p == 0) last_gate_products.store(whole || joined ? 1 : 4, std::memory_order_relaxed);
      if (joined) {
        R* w = static_cast<R*>(gathered.data);
        for (int64_t k = 0; k < 4; ++k) std::memcpy(w + k * u * P, whh + (k * H + j0) * P, u * P * sizeof(R));
        w_gate[0].set(w, P, 4 * u, P, r1 - r0, arena, true);
      } else {
        for (int64_t k = 0; k < (whole ? 1 : 4); ++k)
          w_gate[k].set(whh + (k * H + j0) * P, P, whole ? G : u, P, r1 - r0, arena, true);
      }
      if (proj) w_proj.set(whr + q0 * H, H, q1 - q0, H, r1 - r0, arena, true);
      // inference by chunks: w_ih.T's blocks of the same gate columns, each chunk's x W_ih^T made by this thread for
      // its own columns (units) or its own rows of each step (rows), so no barrier: no other thread reads them. The
      // rows loop's threads run unsynchronised, one may be a chunk ahead: its rows of step q of a chunk sit in slot
      // (q - chunk start) * batch + own row, so two threads never share a slot (rows counted from the chunk's first
      // row did share one with packed input, whose steps differ in size: a race, seen as wrong outputs now and then).
      // The units loop's slices are packed for a whole chunk's rows, and MKL asks for far more than a slice holds
      // (16 MB a thread for a chunk of 2688 rows at I = 8, H = 48; 11 MiB for a 1024 x 512 slice): not in the
      // PackArena, which never shrinks, but in w_in_pool (above), from the workspace pool, which the next call of this
      // shape gets back
      StepOperand<R> w_in[4];
      // (the units loop's slices in w_in_pool at this part's offset, where it was sized for this many parts)
      uint8_t* w_in_mem =
          w_in_pool.defined() && parts == threads ? w_in_pool.data_ptr<uint8_t>() + w_in_at[p] : nullptr;
      if (gate_chunk_steps > 0)
        for (int64_t k = 0; k < (whole ? 1 : 4); ++k) {
          const int64_t m = whole ? G : j1 - j0, rows = by_rows ? r1 - r0 : std::min(N, gate_chunk_steps * batch);
          const size_t bytes =
              w_in[k].set(wih + (k * H + j0) * I, I, m, I, rows, by_rows ? arena : nullptr, true, w_in_mem);
          if (w_in_mem != nullptr) w_in_mem += bytes;
        }
      int64_t gate_base = 0, gate_lo = 0;  // inference by chunks: the chunk's first row and first position
      for (int64_t pos = 0; pos < steps; ++pos) {
        const int64_t t = s.order[pos];
        const int64_t n = s.size[t], row = s.offset[t], keep = need_ws ? row : 0;
        if (gate_chunk_steps > 0 && pos % gate_chunk_steps == 0) {
          const auto [hi, first, rows] = gate_chunk(pos);
          gate_base = first, gate_lo = pos;
          if (by_rows) {
            for (int64_t q = pos; q < hi; ++q) {
              const int64_t u = s.order[q], own = std::max<int64_t>(0, std::min(s.size[u], r1) - r0);
              w_in[0].multiply(own, xp + (s.offset[u] + r0) * I, I, gb + ((q - pos) * batch + r0) * G, G, false);
            }
          } else {
            for (int64_t k = 0; k < (whole ? 1 : 4); ++k)
              w_in[k].multiply(rows, xp + first * I, I, gb + k * H + j0, G, false);
          }
        }
        const int64_t nb = reverse ? t + 1 : t - 1;
        const int64_t e = std::min(n, r1), m = std::max<int64_t>(0, e - r0);  // own rows of this step: [r0, e)
        // the GEMM's left operand: the previous h rows in place when contiguous, else gathered (and masked)
        const R* h_in = hb + s.total * P;
        bool gather = mask != nullptr;
        if (nb >= 0 && nb < steps) {
          if (std::min(n, s.size[nb]) == n) h_in = hb + s.offset[nb] * P;
          else gather = true;
        }
        if (gather) {
          for (int64_t b = r0; b < e; ++b) {
            const R* src = hb + s.prev_row(t, b) * P;
            R* dst = scratch + b * P;
            if (mask != nullptr) {
              const R* m = mask + b * P;
              for (int64_t q = q0; q < q1; ++q) dst[q] = src[q] * m[q];
              round_bf16_block(round_h, dst, P, 0, 1, q0, q1);
            } else {
              for (int64_t q = q0; q < q1; ++q) dst[q] = src[q];
            }
          }
          barrier.wait();
          h_in = scratch;
        }
        const int64_t gate_row = gate_chunk_steps > 0 && by_rows ? (pos - gate_lo) * batch : row - gate_base;
        R* z = gb + gate_row * G;
        R* stats_x = stats_ih_p != nullptr ? stats_ih_p + row : nullptr;
        const R* ln_in = gate_chunk_steps > 0 ? z : xp_p + row * G;  // layer norm's input rows (in place by chunks)
        if (ln_units) {  // units loop: own columns of whole batch rows (r0 = 0), each row's statistics in parts
          if (units_rh) {
            R* r = rh_p;
            for (int64_t k = 0; k < (whole ? 1 : 4); ++k)
              w_gate[k].multiply(m, h_in + r0 * P, P, r + r0 * G + k * H + j0, G, false);
            double* part = units_moments.data();
            for (int64_t b = r0; b < e; ++b) {
              double* own = part + (size_t(p) * batch + b) * 9;
              if (units_ln_ih) part_moments(z + b * G + j0, 4, H, j1 - j0, own);
              if (units_ln_hh) part_moments(r + b * G + j0, 4, H, j1 - j0, own + 3);
            }
            barrier.wait();  // every thread's parts of this step's rows
            for (int64_t b = r0; b < e; ++b) {
              double mx = 0, rx = 1, mh = 0, rr = 1;
              if (units_ln_ih) merge_moments(part + b * 9, int64_t(batch) * 9, parts, mx, rx);
              if (units_ln_hh) merge_moments(part + b * 9 + 3, int64_t(batch) * 9, parts, mh, rr);
              normed_units<S>(z + b * G, r + b * G, units_ln_ih ? ln_ih_w_p : nullptr, mx, rx,
                              units_ln_hh ? ln_hh_w_p : nullptr, mh, rr, units_shift, H, j0, j1);
            }
          } else {
            for (int64_t k = 0; k < (whole ? 1 : 4); ++k)
              w_gate[k].multiply(m, h_in + r0 * P, P, z + r0 * G + k * H + j0, G, true);
          }
        } else if (rh_p != nullptr) {  // rows loop: whole rows of R h_{t-1} here, so LN's row statistics need no barrier
          R* r = rh_p + keep * G;
          w_gate[0].multiply(m, h_in + r0 * P, P, r + r0 * G, G, false);
          if (ln_ih_rows)
            normed_input_rows<S>(z, ln_in, ln_ih_w_p, r, ln_hh_w_p, shift_p, stats_x, N,
                                 stats_hh_p + keep, keep_rows, G, r0, e);
          else
            add_normed_rows<S>(z, r, ln_hh_w_p, ln_hh_b_p, stats_hh_p + keep, keep_rows, G, r0, e);
        } else {
          if (ln_ih_rows)  // z = LN(x W_ih^T) + shift first: the GEMM below adds R h to it
            normed_input_rows<S>(z, ln_in, ln_ih_w_p, nullptr, nullptr, shift_p, stats_x, N, nullptr, 0, G,
                                 r0, e);
          if (joined) {
            w_gate[0].multiply(m, h_in + r0 * P, P, own_z, 4 * u, false);  // added row by row below
          } else {
            for (int64_t k = 0; k < (whole ? 1 : 4); ++k)
              w_gate[k].multiply(m, h_in + r0 * P, P, z + r0 * G + k * H + j0, G, true);
          }
        }
        set_step(st, t, gate_row);
        if (ln_units && ln_c_w.defined()) {  // layer norm of c over every thread's units: moments in parts
          st.part = p, st.parts = parts, st.c_parts = units_moments.data() + 6;
          st.parts_stride = int64_t(batch) * 9, st.parts_row = 9;
          st.phase = 1;
          rows_fn(st, r0, e, j0, j1);
          barrier.wait();  // every thread's parts of the cells' moments
          st.phase = 2;
        }
        if (joined) {  // each row's part of h_{t-1} W_hh^T added to its gate columns just before its sweep (in L1)
          for (int64_t b = r0; b < e; ++b) {
            for (int64_t k = 0; k < 4; ++k) {
              R* zk = z + b * G + k * H + j0;
              const R* ok = own_z + ((b - r0) * 4 + k) * u;
#pragma omp simd
              for (int64_t j = 0; j < u; ++j) zk[j] += ok[j];
            }
            rows_fn(st, b, b + 1, j0, j1);
          }
        } else {
          rows_fn(st, r0, e, j0, j1);
        }
        round_bf16_block(round_h, st.h_out, proj ? H : P, r0, e, j0, j1);  // h (or h_raw): own rows and units
        barrier.wait();  // h_t complete before any thread reads it
        if (proj) {
          R* h = hb + row * P;
          w_proj.multiply(m, hr + (keep + r0) * H, H, h + r0 * P + q0, P, false);
          if (zoning_h) {  // keep the previous h where d = 1, on the projected h
            for (int64_t b = r0; b < e; ++b) {
              const R* hp = hb + s.prev_row(t, b) * P;
              const R* w = st.zh + b * st.zh_stride;
              R* hrow = h + b * P;
              for (int64_t q = q0; q < q1; ++q) hrow[q] = lerp(hrow[q], hp[q], w[q]);
            }
          }
          round_bf16_block(round_h, h, P, r0, e, q0, q1);
          barrier.wait();  // the projected h complete, and h_raw's rows free for the next step
        }
      }
    }
  } else {
    int64_t gate_base = 0;  // as in the partitioned loop
    for (int64_t pos = 0; pos < static_cast<int64_t>(s.order.size()); ++pos) {
      const int64_t t = s.order[pos];
      const int64_t n = s.size[t], row = s.offset[t];
      const int64_t keep = need_ws ? row : 0;
      if (gate_chunk_steps > 0 && pos % gate_chunk_steps == 0) {
        const auto [hi, first, rows] = gate_chunk(pos);
        gate_base = first;
        Tensor part = gates.narrow(0, 0, rows);
        at::mm_out(part, x.narrow(0, first, rows), w_ih_t);
      }
      Tensor h_prev = rows_before(h_buf, s, t, h_scratch);  // (n, P)
      Tensor h_in = h_prev;
      if (rec_mask.defined()) {
        Tensor out = h_masked.narrow(0, 0, n);
        h_in = at::mul_out(out, h_prev, rec_mask.narrow(0, 0, n));
        round_bf16_tensor(round_h, h_in);
      }
      Tensor z = gates.narrow(0, row - gate_base, n);  // (n, 4H)
      if (ln_hh_w.defined()) {
        Tensor r = rh.narrow(0, keep, n);
        step_gemm(r, h_in, w_hh_t, false);
        auto* stats = ptr<S>(stats_hh) + keep;
        const int64_t stride = keep_rows;
        at::parallel_for(0, n, grain_for(G), [&](int64_t b0, int64_t b1) {
          add_normed_rows<S>(ptr<S>(z), ptr<S>(r), ptr<S>(ln_hh_w), ptr<S>(ln_hh_b), stats, stride, G, b0, b1);
        });
      } else {
        step_gemm(z, h_in, w_hh_t, true);  // z += h_in @ w_hh.T, one BLAS call with beta = 1
      }
      set_step(a, t, row - gate_base);
      at::parallel_for(0, n, grain_for(8 * H), [&](int64_t b0, int64_t b1) { rows_fn(a, b0, b1, 0, H); });
      round_bf16_tensor(round_h, proj ? h_raw.narrow(0, keep, n) : h_buf.narrow(0, row, n));
      if (proj) {
        Tensor h = h_buf.narrow(0, row, n);
        step_gemm(h, h_raw.narrow(0, keep, n), w_hr_t, false);
        if (zoning_h) {  // keep the previous h where d = 1, on the projected h
          h.lerp_(h_prev, zh_rows.defined() ? zh_rows.narrow(0, row, n) : zh_const);
        }
        round_bf16_tensor(round_h, h);
      }
    }
  }

  const std::vector<int64_t> out_shape =
      x_in.dim() == 3 ? std::vector<int64_t>{x_in.size(0), x_in.size(1), P} : std::vector<int64_t>{N, P};
  Tensor output = h_buf.narrow(0, 0, N).view(out_shape);
  Tensor h_n, c_n;
  if (s.uniform) {
    const int64_t first = s.offset[s.order.back()];
    h_n = h_buf.narrow(0, first, batch).clone();
    c_n = c_buf.narrow(0, c_row(s.order.back()), batch).to(x.scalar_type(), false, true);
  } else {
    std::vector<int64_t> last(batch);
    if (reverse) {
      for (int64_t b = 0; b < batch; ++b) last[b] = b;  // every sequence ends at step 0
    } else {
      for (int64_t t = 0; t < static_cast<int64_t>(s.size.size()); ++t)
        for (int64_t b = 0; b < s.size[t]; ++b) last[b] = s.offset[t] + b;
    }
    Tensor index = at::tensor(last, at::kLong);
    h_n = h_buf.index_select(0, index);
    c_n = c_buf.index_select(0, index).to(x.scalar_type());
  }
  auto none = [&] { return at::empty({0}, opts); };
  if (!need_ws) {
    std::vector<Tensor> result{output, h_n, c_n};
    for (int k = 0; k < 10; ++k) result.push_back(none());
    return result;
  }
  Tensor cells = c_buf.narrow(0, 0, N);
  if (cells.scalar_type() != x.scalar_type()) cells = cells.to(x.scalar_type());
  auto or_none = [&](const Tensor& t) { return t.defined() ? t : none(); };
  return {output, h_n, c_n, gates, cells, or_none(c_new), tanh_c, or_none(h_raw), or_none(x_proj), or_none(rh),
          or_none(stats_ih), or_none(stats_hh), or_none(stats_c)};
}

// ------------------------------------------------------------------------------------------------ backward pass

template <typename S>
struct BackwardStep {
  using R = typename Num<S>::raw;
  using A = typename Num<S>::acc;
  int64_t H = 0;
  const R* gates = nullptr;    // (n, 4H) activated i f g o
  const R* tanh_c = nullptr;   // (n, H)
  const R* cells = nullptr;    // (N, H) carried cells of every row; a row's previous cell is found by the schedule
  const R* c0 = nullptr;       // (B, H) initial cells
  const Schedule* sched = nullptr;
  int64_t t = 0;
  const R* c_new = nullptr;    // (n, H) new cell before zoneout
  const R* dh = nullptr;       // (n, H) gradient of h (before the projection)
  R* dh_sum = nullptr;         // when set: dh_sum = dh_in + dh_rec first, the dh rows (no projection, no zoneout)
  const R* dh_in = nullptr;    // (n, P) gradient of this step's outputs
  const R* dh_rec = nullptr;   // (n, P) gradient of h fed back from the next step
  A* dc = nullptr;             // (n, H) gradient of the carried cell in, of the previous cell out
  R* dz = nullptr;             // (n, 4H) gradient of the pre-activations out
  R* d_normed = nullptr;       // (n, H) gradient of LN_c's output (layer norm of c)
  const R* peephole = nullptr;
  const R* zc = nullptr; int64_t zc_stride = 0;
  const R* ln_c_w = nullptr;
  const R* stats_c = nullptr; int64_t stats_stride = 0;
  A clip = std::numeric_limits<A>::infinity();
};

template <typename S, bool PEEP, bool ZC, bool LNC>
void backward_rows(const BackwardStep<S>& a, int64_t begin, int64_t end, int64_t j0, int64_t j1) {
  using A = typename Num<S>::acc;
  const int64_t H = a.H;
  const A clip = a.clip;  // locals: stores through the row pointers could alias the struct's fields
  const auto* peep = a.peephole;
  const auto* ln_w = a.ln_c_w;
  for (int64_t b = begin; b < end; ++b) {
    const auto* z = a.gates + b * 4 * H;
    const auto* tc = a.tanh_c + b * H;
    const int64_t prev = a.sched->prev_row(a.t, b);
    const auto* cp = prev < a.sched->total ? a.cells + prev * H : a.c0 + (prev - a.sched->total) * H;
    const auto* cn = a.c_new + b * H;
    const auto* dh = a.dh + b * H;
    const auto* zc = a.zc + b * a.zc_stride;
    A* dc = a.dc + b * H;
    auto* dz = a.dz + b * 4 * H;
    if (a.dh_sum != nullptr) {  // dh = grad_output + the gradient fed back, in this row's sweep
      auto* d = a.dh_sum + b * H;
      const auto* g = a.dh_in + b * H;
      const auto* r = a.dh_rec + b * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) store(d, j, static_cast<A>(load(g, j)) + static_cast<A>(load(r, j)));
    }
    A mean = 0, rstd = 0, sum_g = 0, sum_gx = 0;
    auto* dn = LNC ? a.d_normed + b * H : nullptr;
    if constexpr (LNC) {
      // dc += LN_c backward of dh * o * (1 - tanh^2): needs two row sums first
      mean = load(a.stats_c, b);
      rstd = load(a.stats_c, a.stats_stride + b);
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int64_t j = 0; j < H; ++j) {
        const A o = load(z, 3 * H + j), t = load(tc, j);
        const A d = load(dh, j) * o * (A(1) - t * t);
        store(dn, j, d);
        const A gw = d * load(ln_w, j);
        sum_g += gw;
        sum_gx += gw * (load(cn, j) - mean) * rstd;
      }
      sum_g /= static_cast<A>(H);
      sum_gx /= static_cast<A>(H);
    }
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) {
      const A i = load(z, j), f = load(z, H + j), g = load(z, 2 * H + j), o = load(z, 3 * H + j);
      const A t = load(tc, j), c = load(cn, j), d_h = load(dh, j);
      A d_c = dc[j];
      A to_prev = 0;
      if constexpr (ZC) {
        const A k = load(zc, j);
        to_prev = d_c * k;
        d_c = d_c * (A(1) - k);
      }
      const A dzo = d_h * t * o * (A(1) - o);
      if constexpr (LNC) {
        const A xhat = (c - mean) * rstd;
        const A gw = load(dn, j) * load(ln_w, j);
        d_c += rstd * (gw - sum_g - xhat * sum_gx);
      } else {
        d_c += d_h * o * (A(1) - t * t);
      }
      if constexpr (PEEP) d_c += dzo * load(peep, 2 * H + j);
      d_c = std::fabs(c) < clip ? d_c : A(0);
      const A c_p = load(cp, j);
      const A dzi = d_c * g * i * (A(1) - i);
      const A dzf = d_c * c_p * f * (A(1) - f);
      const A dzg = d_c * i * (A(1) - g * g);
      store(dz, j, dzi);
      store(dz, H + j, dzf);
      store(dz, 2 * H + j, dzg);
      store(dz, 3 * H + j, dzo);
      A prev = d_c * f + to_prev;
      if constexpr (PEEP) prev += dzi * load(peep, j) + dzf * load(peep, H + j);
      dc[j] = prev;
    }
  }
}

template <typename S>
using BackwardFn = void (*)(const BackwardStep<S>&, int64_t, int64_t, int64_t, int64_t);

template <typename S>
BackwardFn<S> pick_backward(bool peep, bool zc, bool lnc) {
  BackwardFn<S> table[8] = {
#define F(i) &backward_rows<S, (i & 4) != 0, (i & 2) != 0, (i & 1) != 0>
      F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7),
#undef F
  };
  return table[(peep << 2) | (zc << 1) | int(lnc)];
}

// Layer norm's backward of one row of G values v (mean, rstd its statistics, w the gain) for the gradient g of its
// output: out = rstd (g w - mean(g w) - xhat mean(g w xhat)), xhat = (v - mean) rstd; with `sums` it also adds
// g xhat (the gain's gradient) to the column sums in the same sweep. ln_backward_rows, gate_column_sums and fold_rows
// call it.
template <typename S>
inline void ln_row_backward(const typename Num<S>::raw* g, const typename Num<S>::raw* v, typename Num<S>::acc mean,
                            typename Num<S>::acc rstd, const typename Num<S>::raw* w, typename Num<S>::raw* out,
                            typename Num<S>::acc* sums, int64_t G) {
  using A = typename Num<S>::acc;
  A sum_g = 0, sum_gx = 0;
  if (sums != nullptr) {
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t j = 0; j < G; ++j) {
      const A xhat = (load(v, j) - mean) * rstd, gj = load(g, j), gw = gj * load(w, j);
      sums[j] += gj * xhat;
      sum_g += gw;
      sum_gx += gw * xhat;
    }
  } else {
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t j = 0; j < G; ++j) {
      const A xhat = (load(v, j) - mean) * rstd, gw = load(g, j) * load(w, j);
      sum_g += gw;
      sum_gx += gw * xhat;
    }
  }
  sum_g /= static_cast<A>(G);
  sum_gx /= static_cast<A>(G);
#pragma omp simd
  for (int64_t j = 0; j < G; ++j) {
    const A xhat = (load(v, j) - mean) * rstd;
    store(out, j, rstd * (load(g, j) * load(w, j) - sum_g - xhat * sum_gx));
  }
}

// d(rh) of rows [begin, end) of LN over R h (g = their dz rows)
template <typename S>
void ln_backward_rows(const typename Num<S>::raw* dz, const typename Num<S>::raw* rh, const typename Num<S>::raw* w,
                      const typename Num<S>::raw* stats, int64_t stats_stride, typename Num<S>::raw* out, int64_t G,
                      int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b)
    ln_row_backward<S>(dz + b * G, rh + b * G, load(stats, b), load(stats, stats_stride + b), w, out + b * G, nullptr,
                       G);
}

// The variants' parameter gradients are column sums over all N rows of products the backward already has. They
// replace at::native_layer_norm_backward (three calls with layer norm, each its own passes over (N, 4H) or (N, H):
// ~0.3 ms of a 3 ms training step at T=35 B=16 H=128, benchmarks/RESULTS.md "Session 7: variants at H = 128")
// and the peephole's gathered copy of the previous cells and its three products.
//
// GateColumnSums: one pass over the gate rows (N, 4H) of dz sums dz (the bias gradient, which is also each LN's
// bias gradient) and, for each LN over 4H columns (of x W_ih^T and of R h), dz * xhat with xhat = (v - mean) rstd;
// in the same pass it writes the gradient of x W_ih^T through its LN (d_x_proj) when asked. Each thread takes a
// run of rows, sums blocks of 64 rows in the accumulation type (vector-wide), and adds each block into its own
// double partial sums; the partials are added at the end.
template <typename S>
struct GateColumnSums {
  using R = typename Num<S>::raw;
  const R* dz = nullptr;
  const R* ln_in[2] = {nullptr, nullptr};     // (N, 4H) normalised inputs: x_proj, rh (null when absent)
  const R* ln_stats[2] = {nullptr, nullptr};  // (2, N) mean row, rstd row
  const R* ln_ih_w = nullptr;                 // (4H) gain of LN of x W_ih^T, with d_x_proj
  R* d_x_proj = nullptr;                      // (N, 4H) out, or null
};

// returns the (3, 4H) sums: dz, dz * xhat of x W_ih^T, dz * xhat of R h
template <typename S>
Tensor gate_column_sums(const GateColumnSums<S>& a, int64_t N, int64_t G) {
  using R = typename Num<S>::raw;
  using A = typename Num<S>::acc;
  constexpr int64_t kBlock = 64;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (N + kBlock - 1) / kBlock));
  Tensor partial = at::zeros({parts, 3, G}, at::kDouble);
  double* part_p = partial.data_ptr<double>();
  at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    std::vector<A> acc(3 * G);
    A* s0 = acc.data();
    A* s1 = s0 + G;
    A* s2 = s1 + G;
    for (int64_t p = p0; p < p1; ++p) {
      const auto [r0, r1] = rows_of(N, static_cast<int>(p), static_cast<int>(parts));
      double* part = part_p + p * 3 * G;
      for (int64_t b0 = r0; b0 < r1; b0 += kBlock) {
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t r = b0; r < std::min(r1, b0 + kBlock); ++r) {
          const R* g = a.dz + r * G;
#pragma omp simd
          for (int64_t j = 0; j < G; ++j) s0[j] += load(g, j);
          if (a.ln_in[0] != nullptr) {
            const A mean = load(a.ln_stats[0], r), rstd = load(a.ln_stats[0], N + r);
            const R* v = a.ln_in[0] + r * G;
            if (a.d_x_proj != nullptr) {  // as ln_backward_rows, with the column sums in its first sweep
              ln_row_backward<S>(g, v, mean, rstd, a.ln_ih_w, a.d_x_proj + r * G, s1, G);
            } else {
#pragma omp simd
              for (int64_t j = 0; j < G; ++j) s1[j] += load(g, j) * ((load(v, j) - mean) * rstd);
            }
          }
          if (a.ln_in[1] != nullptr) {
            const A mean = load(a.ln_stats[1], r), rstd = load(a.ln_stats[1], N + r);
            const R* v = a.ln_in[1] + r * G;
#pragma omp simd
            for (int64_t j = 0; j < G; ++j) s2[j] += load(g, j) * ((load(v, j) - mean) * rstd);
          }
        }
#pragma omp simd
        for (int64_t j = 0; j < 3 * G; ++j) part[j] += acc[j];
      }
    }
  });
  return partial.sum(0);  // (3, 4H)
}

// One row's terms of the sums over units that cell_column_sums (after the loop) and fold_rows (in the rows loop's
// steps) add up, for n units from the first one of z's gate blocks (z: the row's dz, gate blocks H apart), in the
// accumulation type T: the peepholes' dz_i c_prev, dz_f c_prev, dz_o c_new into pi, pf, po ...
template <typename T, typename R>
inline void peephole_row_sums(const R* z, int64_t H, const R* c_prev, const R* c_new, int64_t n, T* pi, T* pf,
                              T* po) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const T cp = load(c_prev, j);
    pi[j] += load(z, j) * cp;
    pf[j] += load(z, H + j) * cp;
    po[j] += static_cast<T>(load(z, 3 * H + j)) * load(c_new, j);
  }
}

// ... and LN of c's d_normed xhat and d_normed into lw, lb (xhat = (c_new - mean) rstd)
template <typename T, typename R>
inline void ln_c_row_sums(const R* d, const R* c_new, T mean, T rstd, int64_t n, T* lw, T* lb) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    lw[j] += static_cast<T>(load(d, j)) * ((load(c_new, j) - mean) * rstd);
    lb[j] += load(d, j);
  }
}

// Over the H units: the peephole gradients sum dz_i c_prev, dz_f c_prev, dz_o c_new (c_prev found by the schedule:
// the carried cell of the row before, or c0), and LN of c's sum d_normed * xhat, sum d_normed.
template <typename S>
struct CellColumnSums {
  using R = typename Num<S>::raw;
  const R* dz = nullptr;         // (N, 4H)
  const R* cells = nullptr;      // (N, H) carried cells
  const R* c0 = nullptr;         // (B, H)
  const R* c_new = nullptr;      // (N, H) new cells before zoneout
  const int64_t* prev = nullptr; // (N) previous row of each row (>= N: row N + b of c0's b)
  const R* d_normed = nullptr;   // (N, H) gradient of LN_c's output (null without layer norm of c)
  const R* stats_c = nullptr;    // (2, N)
  double* peep = nullptr;        // (3, H) or null
  double* ln_w = nullptr;        // (H) or null
  double* ln_b = nullptr;        // (H) or null
};

template <typename S>
void cell_column_sums(const CellColumnSums<S>& a, int64_t N, int64_t H) {
  using R = typename Num<S>::raw;
  const int64_t G = 4 * H;
  at::parallel_for(0, (H + 15) / 16, 4, [&](int64_t c0, int64_t c1) {
    const int64_t j0 = c0 * 16, j1 = std::min(H, c1 * 16), w = j1 - j0;
    std::vector<double> acc(5 * w, 0.0);
    double *pi = acc.data(), *pf = pi + w, *po = pf + w, *lw = po + w, *lb = lw + w;
    for (int64_t r = 0; r < N; ++r) {
      const R* cn = a.c_new + r * H + j0;
      if (a.peep != nullptr) {
        const int64_t p = a.prev[r];
        const R* cp = (p < N ? a.cells + p * H : a.c0 + (p - N) * H) + j0;
        peephole_row_sums<double>(a.dz + r * G + j0, H, cp, cn, w, pi, pf, po);
      }
      if (a.d_normed != nullptr)
        ln_c_row_sums<double>(a.d_normed + r * H + j0, cn, load(a.stats_c, r), load(a.stats_c, N + r), w, lw, lb);
    }
    for (int64_t j = 0; j < w; ++j) {
      if (a.peep != nullptr) {
        a.peep[j0 + j] = pi[j];
        a.peep[H + j0 + j] = pf[j];
        a.peep[2 * H + j0 + j] = po[j];
      }
      if (a.ln_w != nullptr) a.ln_w[j0 + j] = lw[j];
      if (a.ln_b != nullptr) a.ln_b[j0 + j] = lb[j];
    }
  });
}

// The rows loop's backward makes the same sums step by step instead: each thread, right after it made its rows of
// a step's dz (still in L1/L2), adds them into its own sums and writes those rows of d_x_proj (dz through LN of
// x W_ih^T) and d_rh (through LN of R h). gate_column_sums and cell_column_sums read dz, x_proj, rh, the cells and
// d_normed back from memory after the loop: at T=35 B=64 H=128 with every variant 0.6-1.0 ms of a 10-11 ms step
// (benchmarks/RESULTS.md, "Session 9: variants' training at H = 128"). Sums as gate_column_sums makes them: blocks
// of up to kFoldRows rows in the accumulation type, each block added into the thread's double partial sums.
constexpr int64_t kFoldRows = 64;
// rows of d(x W_ih^T) and d(R h) per chunk of the in-loop weight gradients (backward_impl): two chunks of both in
// 2 MiB at H = 128 (each a core's L2), and GEMMs of 256 rows, long enough for MKL's kernels
constexpr int64_t kDwChunkRows = 256;

template <typename S>
struct RowFold {
  using R = typename Num<S>::raw;
  int64_t N = 0, H = 0;
  const Schedule* sched = nullptr;
  const R* x_proj = nullptr; const R* stats_ih = nullptr; const R* ln_ih_w = nullptr;  // LN of x W_ih^T
  R* d_x_proj = nullptr;     // (N, 4H) out, or null (no gradient of x or w_ih asked for)
  bool sum_ih = false;       // dz * xhat of x W_ih^T (ln_ih_w's gradient)
  const R* rh = nullptr; const R* stats_hh = nullptr; const R* ln_hh_w = nullptr;  // LN of R h
  R* d_rh = nullptr;         // (N, 4H) out, with rh
  int64_t d_base = 0;        // row r of d_x_proj and d_rh is at r - d_base (in-loop weight gradients: a chunk's)
  bool sum_hh = false;       // dz * xhat of R h
  const R* cells = nullptr; const R* c0 = nullptr;  // peephole gradient: the previous cells (null: not asked for)
  const R* c_new = nullptr;  // (N, H) new cells before zoneout
  const R* d_normed = nullptr; const R* stats_c = nullptr;  // LN of c's gradient: d_normed of the step's rows
};

// Layout of a thread's sums (acc and its double partials): dz, dz xhat_ih, dz xhat_hh (4H each), then the
// peepholes' dz_i c_prev, dz_f c_prev, dz_o c_new and LN of c's d_normed xhat, d_normed (H each)
inline int64_t fold_width(int64_t H) { return 3 * 4 * H + 5 * H; }

// rows [r0, e) of step t (first row `row`; dz: the step's rows)
template <typename S>
void fold_rows(const RowFold<S>& f, const typename Num<S>::raw* dz, const typename Num<S>::raw* d_normed,
               int64_t t, int64_t row, int64_t r0, int64_t e, typename Num<S>::acc* acc) {
  using A = typename Num<S>::acc;
  using R = typename Num<S>::raw;
  const int64_t H = f.H, G = 4 * H, N = f.N;
  A* s0 = acc;
  A* s1 = s0 + G;
  A* s2 = s1 + G;
  A* pi = s2 + G;
  A* pf = pi + H;
  A* po = pf + H;
  A* lw = po + H;
  A* lb = lw + H;
  for (int64_t b = r0; b < e; ++b) {
    const int64_t r = row + b;
    const R* g = dz + b * G;
#pragma omp simd
    for (int64_t j = 0; j < G; ++j) s0[j] += load(g, j);
    if (f.x_proj != nullptr) {
      const R* v = f.x_proj + r * G;
      const A mean = load(f.stats_ih, r), rstd = load(f.stats_ih, N + r);
      if (f.d_x_proj != nullptr) {
        ln_row_backward<S>(g, v, mean, rstd, f.ln_ih_w, f.d_x_proj + (r - f.d_base) * G, f.sum_ih ? s1 : nullptr, G);
      } else if (f.sum_ih) {
#pragma omp simd
        for (int64_t j = 0; j < G; ++j) s1[j] += load(g, j) * ((load(v, j) - mean) * rstd);
      }
    }
    if (f.rh != nullptr)
      ln_row_backward<S>(g, f.rh + r * G, load(f.stats_hh, r), load(f.stats_hh, N + r), f.ln_hh_w,
                         f.d_rh + (r - f.d_base) * G, f.sum_hh ? s2 : nullptr, G);
    const R* cn = f.c_new + r * H;
    if (f.cells != nullptr) {
      const int64_t p = f.sched->prev_row(t, b);
      peephole_row_sums<A>(g, H, p < N ? f.cells + p * H : f.c0 + (p - N) * H, cn, H, pi, pf, po);
    }
    if (f.d_normed != nullptr)
      ln_c_row_sums<A>(d_normed + b * H, cn, load(f.stats_c, r), load(f.stats_c, N + r), H, lw, lb);
  }
}

Tensor gather_prev(const Tensor& outputs, const Tensor& init, const Schedule& s) {
  // (N, .) previous state of every row
  const int64_t N = s.total;
  Tensor buf = at::cat({outputs.reshape({N, outputs.size(-1)}), init});
  if (s.uniform) {
    if (s.reverse) return buf.narrow(0, s.batch, N);
    return at::cat({init, buf.narrow(0, 0, N - s.batch)});
  }
  std::vector<int64_t> prev(N);
  for (int64_t t = 0; t < static_cast<int64_t>(s.size.size()); ++t)
    for (int64_t b = 0; b < s.size[t]; ++b) prev[s.offset[t] + b] = s.prev_row(t, b);
  return buf.index_select(0, at::tensor(prev, at::kLong));
}

template <typename S>
std::vector<Tensor> backward_impl(
    const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& grad_c_n, const Tensor& x_in, const Tensor& h0,
    const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh, const optional<Tensor>& w_hr_opt,
    const optional<Tensor>& batch_sizes, bool reverse, const optional<Tensor>& peephole_opt,
    const optional<Tensor>& ln_ih_w, const optional<Tensor>& ln_ih_b, const optional<Tensor>& ln_hh_w_opt,
    const optional<Tensor>& ln_hh_b, const optional<Tensor>& ln_c_w_opt, const optional<Tensor>& ln_c_b,
    const optional<Tensor>& rec_mask_opt, const optional<Tensor>& zh_mask, const optional<Tensor>& zc_mask,
    double zoneout_h, double zoneout_c, optional<double> cell_clip, const Tensor& output, const Tensor& gates,
    const Tensor& cells, const Tensor& c_new_ws, const Tensor& tanh_c, const Tensor& h_raw, const Tensor& x_proj,
    const Tensor& rh, const Tensor& stats_ih, const Tensor& stats_hh, const Tensor& stats_c,
    const std::vector<bool>& want, bool round_dz = false) {
  // round_dz: round every GEMM operand computed here (dz, d(R h), d(x w_ih^T), dh with a projection, h * mask) to
  // bfloat16 after the row sweep that makes it (float32 only; see the header)
  using A = typename Num<S>::acc;
  const auto acc_dtype = c10::CppTypeToScalarType<A>::value;
  const int64_t batch = h0.size(0), P = h0.size(1), H = c0.size(1), G = 4 * H;
  const Schedule s = make_schedule(x_in, batch_sizes, batch, reverse);
  const int64_t N = s.total;
  const Tensor x = x_in.reshape({N, x_in.size(-1)});
  const auto opts = x.options();
  const Tensor w_hr = contig(w_hr_opt);
  const bool proj = w_hr.defined();
  const Tensor peephole = contig(peephole_opt);
  const Tensor ln_hh_w = contig(ln_hh_w_opt), ln_c_w = contig(ln_c_w_opt);
  const Tensor rec_mask = contig(rec_mask_opt);
  const bool zoning_h = (zh_mask.has_value() && zh_mask->defined()) || zoneout_h > 0;
  const bool zoning_c = (zc_mask.has_value() && zc_mask->defined()) || zoneout_c > 0;
  Tensor zh_rows, zc_rows, zc_const;
  if (zoning_h && zh_mask.has_value() && zh_mask->defined()) zh_rows = zh_mask->reshape({N, P}).contiguous();
  if (zoning_c) {
    if (zc_mask.has_value() && zc_mask->defined()) zc_rows = zc_mask->reshape({N, H}).contiguous();
    else zc_const = at::full({H}, zoneout_c, opts);
  }

  const Tensor c_new = zoning_c ? c_new_ws : cells;               // (N, H) new cells before zoneout
  // The plain layer's backward in the units loop keeps dz for a chunk of steps only, and each thread adds the
  // chunk's weight, bias and input gradients of its own units as the chunk ends (below). A whole (N, 4H) dz above
  // glibc's mmap threshold is fresh pages on every call: at T=200 B=64 H=512 (105 MB) the first writes' page faults
  // took the backward's row sweeps from 20 to 57 ms (2 threads, benchmarks/RESULTS.md "Session 7").
  const LoopPlan plan = plan_for<S>(batch, H, P, ln_hh_w.defined() || ln_c_w.defined());
  const bool plain = !peephole.defined() && !ln_hh_w.defined() && !ln_c_w.defined() && !rec_mask.defined() &&
                     !(ln_ih_w.has_value() && ln_ih_w->defined()) && s.uniform;
  const int64_t row_bytes = G * static_cast<int64_t>(sizeof(typename Num<S>::raw));
  const char* forced_chunk = std::getenv("LSTMKIT_DZ_CHUNK");  // rows per chunk, for comparisons (0: whole)
  const int64_t fitting_rows = kChunkDzBytes / row_bytes;
  const bool worth_it = N * row_bytes > kChunkDzAboveBytes &&
                        fitting_rows >= kChunkMinRowsPerInput * (x_in.size(-1) + P);
  const int64_t chunk_rows = forced_chunk != nullptr ? std::atoll(forced_chunk) : (worth_it ? fitting_rows : 0);
  const bool chunked = plan.threads > 0 && !plan.by_rows && plain && chunk_rows > 0;
  const int64_t chunk_steps = chunked ? std::max<int64_t>(1, chunk_rows / std::max<int64_t>(1, batch)) : 0;
  Tensor d_rh;  // the gradient of R h through its layer norm, below
  // the rows loop folds the variants' column sums and dz through LN of x W_ih^T into its steps (fold_rows)
  const bool ln_xw = ln_ih_w.has_value() && ln_ih_w->defined();
  const bool peep_grad = peephole.defined() && want[7];
  const bool ln_c_grad = ln_c_w.defined() && (want[12] || want[13]);
  const bool fold_sums = plan.threads > 0 && plan.by_rows && (ln_xw || ln_hh_w.defined() || peep_grad || ln_c_grad);
  // d_normed: every row for cell_column_sums, or one step's rows when folded
  Tensor d_normed = ln_c_w.defined() ? pooled_empty({fold_sums ? batch : N, H}, opts) : Tensor();
  Tensor d_x_proj;  // below
  // folded with both 4H layer norms, nothing after the loop reads dz (the GEMMs read d_x_proj and d_rh): one step's
  // rows, written and read in cache (4.6 MB less written at T=35 B=64 H=128)
  const bool dz_step_only = fold_sums && ln_xw && ln_hh_w.defined();
  // In-loop weight gradients: there (padded input, no projection, float32 or float64, no bfloat16 rounding), d(x W_ih^T)
  // and d(R h) are kept for a chunk of kDwChunkRows rows only, in two buffers used in turn, and at the end of each
  // chunk (a barrier: every thread's rows made) each thread adds its half of the 4H rows of dW_ih and dW_hh (and
  // makes its half of the chunk's rows of dx) from the chunk while it is in cache, with the previous h of the chunk's
  // rows (times the recurrent mask) gathered by each thread for its own rows as it goes. Instead of two (N, 4H)
  // tensors written to memory and read back by MKL's two-thread GEMMs after the loop (T=35 B=64 H=128: 9.2 MB),
  // whose cost doubled when another model's step had left the caches cold (benchmarks/RESULTS.md, "Session 10").
  // LSTMKIT_LN_DW_CHUNK=<rows> sets the chunk (0: after the loop, as before).
  const char* dw_env = std::getenv("LSTMKIT_LN_DW_CHUNK");
  const int64_t dw_chunk_env = dw_env != nullptr ? std::atoll(dw_env) : kDwChunkRows;
  const bool dw_in_loop = dz_step_only && s.uniform && !proj && !round_dz && dw_chunk_env > 0 &&
                          std::is_floating_point_v<typename Num<S>::raw> && (want[0] || want[3] || want[4]);
  const int64_t dw_steps = dw_in_loop ? std::max<int64_t>(1, dw_chunk_env / std::max<int64_t>(1, batch)) : 0;
  const int64_t dw_rows = std::min(N, dw_steps * batch);  // rows of one chunk buffer
  last_dw_chunk_rows.store(dw_in_loop ? dw_rows : 0, std::memory_order_relaxed);
  d_rh = ln_hh_w.defined() ? pooled_empty({dw_in_loop ? 2 * dw_rows : N, G}, opts) : Tensor();
  Tensor h_prev_chunk = dw_in_loop && want[4] ? pooled_empty({2 * dw_rows, P}, opts) : Tensor();
  if (fold_sums && ln_xw && (want[0] || want[3])) d_x_proj = pooled_empty({dw_in_loop ? 2 * dw_rows : N, G}, opts);
  Tensor dz = pooled_empty({chunked ? std::min(N, chunk_steps * batch) : dz_step_only ? batch : N, G}, opts);
  last_dz_rows.store(dz.size(0), std::memory_order_relaxed);
  // the gradient of every output h: with a projection all rows are kept (dW_hr = dh_all^T h_raw), else one step's
  // rows at a time in dh_step (the gradient of the outputs is not copied: 52 MB at T=200 B=64 H=1024)
  const Tensor grad_rows = grad_output.reshape({N, P});
  Tensor dh_all = proj ? pooled_empty({N, P}, opts).copy_(grad_rows) : Tensor();  // (N, P)
  Tensor dh_step = proj ? Tensor() : at::empty({batch, P}, opts);
  Tensor dh_state = grad_h_n.clone();                     // (B, P) gradient of the h fed back
  Tensor dc_state = grad_c_n.to(acc_dtype, false, true);  // (B, H) gradient of the carried cell
  Tensor dh_cell = proj ? at::empty({batch, H}, opts) : Tensor();
  Tensor dh_to_prev = zoning_h ? at::empty({batch, P}, opts) : Tensor();
  const Tensor w_hr_n = proj ? w_hr : Tensor();

  BackwardStep<S> a;
  a.H = H;
  a.cells = ptr<S>(cells);
  a.c0 = ptr<S>(c0);
  a.sched = &s;
  a.peephole = ptr<S>(peephole);
  a.ln_c_w = ptr<S>(ln_c_w);
  if (cell_clip.has_value()) a.clip = static_cast<A>(*cell_clip);
  auto rows_fn = pick_backward<S>(peephole.defined(), zoning_c, ln_c_w.defined());

  // the partitioned loop (one parallel region, as in the forward); with layer norm only when split by rows
  last_backward_loop.store(loop_code(plan), std::memory_order_relaxed);
  const int threads = plan.threads;
  Tensor g_x, g_w_ih, g_w_hh;  // chunked: the gradients the loop adds up chunk by chunk
  std::vector<double> db_acc;
  // Without layer norm of x W_ih^T or R h (whose gradients take a pass over dz of their own), the partitioned loop
  // adds the bias gradient up as each step's rows of dz are made, while they are in cache, instead of a dz.sum(0)
  // pass over the whole (N, 4H) dz after it (T=35 B=64 H=128: 4.6 MB, read back from memory). Each thread sums its
  // own rows and columns: in the units loop its columns of db_acc, in the rows loop its own row of partial sums.
  const bool fold_db = threads > 0 && want[5] && !chunked && !ln_xw && !ln_hh_w.defined() && !fold_sums;
  const int64_t fold_w = fold_width(H);
  std::vector<double> fold_part(fold_sums ? threads * fold_w : 0, 0.0);  // each thread's double partial sums
  RowFold<S> fold;
  const Tensor ln_ih_w_c = fold_sums && ln_xw ? ln_ih_w->contiguous() : Tensor();
  if (fold_sums) {
    fold.N = N, fold.H = H, fold.sched = &s;
    if (ln_xw) {
      fold.x_proj = ptr<S>(x_proj), fold.stats_ih = ptr<S>(stats_ih), fold.ln_ih_w = ptr<S>(ln_ih_w_c);
      fold.d_x_proj = ptr<S>(d_x_proj), fold.sum_ih = want[8];
    }
    if (ln_hh_w.defined()) {
      fold.rh = ptr<S>(rh), fold.stats_hh = ptr<S>(stats_hh), fold.ln_hh_w = ptr<S>(ln_hh_w);
      fold.d_rh = ptr<S>(d_rh), fold.sum_hh = want[10];
    }
    if (peep_grad) fold.cells = ptr<S>(cells), fold.c0 = ptr<S>(c0);
    fold.c_new = ptr<S>(c_new);
    if (ln_c_grad) fold.d_normed = ptr<S>(d_normed), fold.stats_c = ptr<S>(stats_c);
  }
  if (threads > 0) {
    using R = typename Num<S>::raw;
    const bool sum_in_rows = !proj && !zoning_h;  // then the row sweep adds the fed-back gradient itself
    R* dh_all_p = ptr<S>(dh_all);
    R* dh_step_p = ptr<S>(dh_step);
    const R* grad_p = ptr<S>(grad_rows);
    R* dhs_p = ptr<S>(dh_state);
    R* to_prev_p = ptr<S>(dh_to_prev);
    R* dcell_p = ptr<S>(dh_cell);
    R* dz_p = ptr<S>(dz);
    const Tensor w_hh_c = w_hh.contiguous();
    const R* whh = ptr<S>(w_hh_c);
    const R* whr = ptr<S>(w_hr_n);
    const R* mask = ptr<S>(rec_mask);
    const R* zh_p = ptr<S>(zh_rows);
    const R zh_p_const = static_cast<R>(zoneout_h);
    // chunked: this call's gradients of x, w_ih, w_hh and the bias, added chunk by chunk inside the region
    const int64_t I = x.size(1);
    const Tensor x_c = chunked || dw_in_loop ? x.contiguous() : Tensor();
    const Tensor w_ih_c = chunked || dw_in_loop ? w_ih.contiguous() : Tensor();
    const Tensor out_c = chunked ? output.reshape({N, P}).contiguous() : Tensor();
    const Tensor h0_c = chunked ? h0.contiguous() : Tensor();
    if ((chunked || dw_in_loop) && want[0]) g_x = pooled_empty({N, I}, opts);
    if ((chunked || dw_in_loop) && want[3]) g_w_ih = at::empty({G, I}, opts);
    if ((chunked || dw_in_loop) && want[4]) g_w_hh = at::empty({G, P}, opts);
    if (chunked && want[5]) db_acc.assign(G, 0.0);
    if (fold_db) db_acc.assign((plan.by_rows ? threads : 1) * G, 0.0);
    const R* x_p = ptr<S>(x_c);
    const R* w_ih_p = ptr<S>(w_ih_c);
    const R* out_p = ptr<S>(out_c);
    const R* h0_p = ptr<S>(h0_c);
    R* gx_p = ptr<S>(g_x);
    R* gwih_p = ptr<S>(g_w_ih);
    R* gwhh_p = ptr<S>(g_w_hh);
    double* db_p = db_acc.empty() ? nullptr : db_acc.data();
    const int64_t steps = s.size.size();
    R* d_rh_p = ptr<S>(d_rh);  // layer norm of R h (rows loop only): the gradient of R h, own rows
    const R* rh_p = ptr<S>(rh);
    const R* stats_hh_p = ptr<S>(stats_hh);
    const R* ln_hh_w_p = ptr<S>(ln_hh_w);
    SpinBarrier barrier, dw_barrier;  // dw_barrier: the end of each chunk of the in-loop weight gradients
    R* dxp_p = ptr<S>(d_x_proj);
    R* hpc_p = ptr<S>(h_prev_chunk);
    const Tensor out_dw = dw_in_loop ? output.reshape({N, P}).contiguous() : Tensor();
    const Tensor h0_dw = dw_in_loop ? h0.contiguous() : Tensor();
    const R* outs_p = ptr<S>(out_dw);
    const R* h0s_p = ptr<S>(h0_dw);
#pragma omp parallel num_threads(threads)
    {
      const int parts = omp_get_num_threads(), p = omp_get_thread_num();
#pragma omp single
      {
        barrier.parties = plan.by_rows ? 1 : parts;
        dw_barrier.parties = parts;
      }
      const bool by_rows = plan.by_rows;
      RowFold<S> my_fold = fold;  // this thread's: d_base moves with the chunks
      int64_t dw_hi = steps, dw_lo = 0, dw_row0 = 0, dw_buf = 0, d_base = 0;  // the chunk: positions [dw_lo, dw_hi)
      bool dw_started = false;
      // own hidden units, own columns of h (the same as the units without projection), own batch rows
      const auto [j0, j1] = by_rows ? std::pair<int64_t, int64_t>{0, H} : slice_of(H, p, parts);
      const auto [q0, q1] = by_rows ? std::pair<int64_t, int64_t>{0, P} : slice_of(P, p, parts);
      const auto [r0, r1] = by_rows ? rows_of(batch, p, parts) : std::pair<int64_t, int64_t>{0, batch};
      BackwardStep<S> st = a;
      PackArena* arena = pack_arena();
      if (arena != nullptr) arena->begin();
      StepOperand<R> w_back, w_proj;  // w_hh's columns of own h columns; w_hr's columns of own units
      w_back.set(whh + q0, G, q1 - q0, P, r1 - r0, arena);
      if (proj) w_proj.set(whr + j0, P, j1 - j0, H, r1 - r0, arena);
      std::vector<A> fold_acc(fold_sums ? fold_w : 0, A(0));  // fold_rows's sums of up to kFoldRows rows
      int64_t fold_rows_in = 0;
      const auto fold_flush = [&] {
        double* part = fold_part.data() + p * fold_w;
        for (int64_t k = 0; k < fold_w; ++k) part[k] += fold_acc[k];
        std::fill(fold_acc.begin(), fold_acc.end(), A(0));
        fold_rows_in = 0;
      };
      bool ih_started = false, hh_started = false;  // chunked: whether this thread's dw rows hold a sum yet
      int64_t dz_base = 0, k_lo = 0, k_hi = steps;    // dz's first row; the chunk's positions in s.order
      for (int64_t k = steps - 1; k >= 0; --k) {
        const int64_t t = s.order[k], n = s.size[t], row = s.offset[t];
        const int64_t e = std::min(n, r1), m = std::max<int64_t>(0, e - r0);  // own rows of this step: [r0, e)
        if (chunked && k == k_hi - 1) {  // a chunk starts: positions [k_lo, k_hi), rows [dz_base, + its rows)
          k_lo = std::max<int64_t>(0, k_hi - chunk_steps);
          dz_base = std::min(s.offset[s.order[k_lo]], s.offset[s.order[k_hi - 1]]);
        }
        if (dz_step_only) dz_base = row;
        if (dw_in_loop && k == dw_hi - 1) {  // a chunk starts; its rows go to buffer dw_buf's, row r at r - d_base
          dw_lo = std::max<int64_t>(0, dw_hi - dw_steps);
          dw_row0 = std::min(s.offset[s.order[dw_lo]], s.offset[s.order[dw_hi - 1]]);
          d_base = dw_row0 - dw_buf * dw_rows;
          my_fold.d_base = d_base;
        }
        R* dh = proj ? dh_all_p + row * P : dh_step_p;
        const R* grad = grad_p + row * P;
        if (!sum_in_rows) {  // own columns: dh = grad + the gradient fed back; zoneout of h splits it
          for (int64_t b = r0; b < e; ++b) {
            R* d = dh + b * P;
            const R* g = proj ? d : grad + b * P;
            const R* r = dhs_p + b * P;
            for (int64_t q = q0; q < q1; ++q) d[q] = g[q] + r[q];
            if (zoning_h) {
              R* tp = to_prev_p + b * P;
              const R* k = zh_p != nullptr ? zh_p + (row + b) * P : nullptr;
              for (int64_t q = q0; q < q1; ++q) {
                tp[q] = d[q] * (k != nullptr ? k[q] : zh_p_const);
                d[q] -= tp[q];
              }
            }
          }
          round_bf16_block(round_dz && proj, dh, P, r0, e, q0, q1);  // the left operand of dh @ w_hr
        }
        const R* d_cell = dh;
        if (proj) {
          barrier.wait();  // every column of dh before d_cell = dh @ w_hr reads them
          w_proj.multiply(m, dh + r0 * P, P, dcell_p + r0 * H + j0, H, false);
          d_cell = dcell_p;
        }
        st.gates = ptr<S>(gates) + row * G;
        st.tanh_c = ptr<S>(tanh_c) + row * H;
        st.t = t;
        st.c_new = ptr<S>(c_new) + row * H;
        st.dh = d_cell;
        st.dh_sum = sum_in_rows ? dh : nullptr;
        st.dh_in = grad;
        st.dh_rec = sum_in_rows ? dhs_p : nullptr;
        st.dz = dz_p + (row - dz_base) * G;
        st.dc = dc_state.template data_ptr<A>();
        if (zoning_c) {
          st.zc = zc_rows.defined() ? ptr<S>(zc_rows) + row * H : ptr<S>(zc_const);
          st.zc_stride = zc_rows.defined() ? H : 0;
        }
        if (st.ln_c_w != nullptr) {  // rows loop only (whole rows)
          st.d_normed = ptr<S>(d_normed) + (fold_sums ? 0 : row * H);  // folded: this step's rows only
          st.stats_c = ptr<S>(stats_c) + row;
          st.stats_stride = N;
        }
        rows_fn(st, r0, e, j0, j1);
        for (int64_t gate = 0; gate < 4; ++gate)  // st.dz: this step's rows of dz (of its chunk when chunked)
          round_bf16_block(round_dz, st.dz, G, r0, e, gate * H + j0, gate * H + j1);
        if (fold_db) {  // the bias gradient of own rows and units (as rounded: the sum of what the GEMMs read)
          double* acc = db_p + (by_rows ? p * G : 0);
          for (int64_t b = r0; b < e; ++b)
            for (int64_t gate = 0; gate < 4; ++gate) {
              const R* d = st.dz + b * G + gate * H;
              double* sum = acc + gate * H;
#pragma omp simd
              for (int64_t j = j0; j < j1; ++j) sum[j] += static_cast<double>(d[j]);
            }
        }
        barrier.wait();  // every column of this step's dz before the GEMM reads them
        // own columns of the gradient of the h fed back: dz_t (n, 4H) @ w_hh[:, own], through LN of R h if any
        const R* back = dz_p + (row - dz_base) * G;
        if (fold_sums) {  // the column sums of own rows, d_x_proj's and d_rh's rows (as the GEMMs will read dz)
          fold_rows<S>(my_fold, back, ptr<S>(d_normed), t, row, r0, e, fold_acc.data());
          fold_rows_in += e - r0;
          if (fold_rows_in >= kFoldRows || k == 0) fold_flush();
          if (fold.d_x_proj != nullptr) round_bf16_block(round_dz, fold.d_x_proj + (row - d_base) * G, G, r0, e, 0, G);
        } else if (d_rh_p != nullptr) {
          ln_backward_rows<S>(back, rh_p + row * G, ln_hh_w_p, stats_hh_p + row, N, d_rh_p + row * G, G, r0, e);
        }
        if (d_rh_p != nullptr) {
          round_bf16_block(round_dz, d_rh_p + (row - d_base) * G, G, r0, e, 0, G);
          back = d_rh_p + (row - d_base) * G;
        }
        w_back.multiply(m, back + r0 * G, G, dhs_p + r0 * P + q0, P, false);
        if (mask != nullptr || zoning_h) {
          for (int64_t b = r0; b < e; ++b) {
            R* d = dhs_p + b * P;
            if (mask != nullptr)
              for (int64_t q = q0; q < q1; ++q) d[q] *= mask[b * P + q];
            if (zoning_h)
              for (int64_t q = q0; q < q1; ++q) d[q] += to_prev_p[b * P + q];
          }
        }
        if (dw_in_loop) {
          if (hpc_p != nullptr) {  // own rows' previous h (as the forward's GEMM read it: times the recurrent mask)
            for (int64_t b = r0; b < e; ++b) {
              const int64_t pr = s.prev_row(t, b);
              const R* src = pr < N ? outs_p + pr * P : h0s_p + (pr - N) * P;
              R* dst = hpc_p + (row + b - d_base) * P;
              if (mask != nullptr) {
#pragma omp simd
                for (int64_t q = 0; q < P; ++q) dst[q] = src[q] * mask[b * P + q];
              } else {
                std::copy(src, src + P, dst);
              }
            }
          }
          if (k == dw_lo) {  // the chunk is made in this thread's rows; once in every thread's, its gradients
            dw_barrier.wait();
            const int64_t rows = (dw_hi - dw_lo) * batch, base = dw_buf * dw_rows;
            const auto [g0, g1] = rows_of(G, p, parts);  // own rows of dW_ih and dW_hh
            if (gwih_p != nullptr)
              raw_gemm_tn(rows, g1 - g0, I, dxp_p + base * G + g0, G, x_p + dw_row0 * I, I, gwih_p + g0 * I, I,
                          dw_started);
            if (gwhh_p != nullptr)
              raw_gemm_tn(rows, g1 - g0, P, d_rh_p + base * G + g0, G, hpc_p + base * P, P, gwhh_p + g0 * P, P,
                          dw_started);
            if (gx_p != nullptr) {  // own rows of the chunk's dx = d(x W_ih^T) @ w_ih
              const auto [x0, x1] = rows_of(rows, p, parts);
              raw_gemm(x1 - x0, G, I, dxp_p + (base + x0) * G, G, w_ih_p, I, gx_p + (dw_row0 + x0) * I, I, false);
            }
            dw_started = true;
            dw_buf ^= 1;  // the next chunk fills the other buffers while the other thread may still read these
            dw_hi = dw_lo;
          }
        }
        if (chunked && k == k_lo) {  // the chunk's dz is complete in this thread's columns: its gradients
          const int64_t rows = (k_hi - k_lo) * batch, u = j1 - j0;
          // the previous h of the chunk's rows: outputs one step earlier in time, h0 for the sequence's first step
          const bool has_first = reverse ? dz_base + rows == N : dz_base == 0;
          const int64_t first_rel = reverse ? rows - batch : 0;  // dz rows (in the chunk) whose previous h is h0
          const int64_t rest_rel = reverse ? 0 : (has_first ? batch : 0);
          const int64_t rest_rows = rows - (has_first ? batch : 0);
          const R* rest_h = out_p + (dz_base + rest_rel + (reverse ? batch : -batch)) * P;
          for (int64_t gate = 0; gate < 4; ++gate) {
            const int64_t col = gate * H + j0;
            if (gwih_p != nullptr)
              raw_gemm_tn(rows, u, I, dz_p + col, G, x_p + dz_base * I, I, gwih_p + col * I, I, ih_started);
            if (gwhh_p != nullptr) {
              if (has_first)
                raw_gemm_tn(batch, u, P, dz_p + first_rel * G + col, G, h0_p, P, gwhh_p + col * P, P, hh_started);
              raw_gemm_tn(rest_rows, u, P, dz_p + rest_rel * G + col, G, rest_h, P, gwhh_p + col * P, P,
                          hh_started || has_first);
            }
            if (db_p != nullptr) {
              for (int64_t r = 0; r < rows; ++r) {
                const R* d = dz_p + r * G + col;
                double* acc = db_p + col;
#pragma omp simd
                for (int64_t j = 0; j < u; ++j) acc[j] += static_cast<double>(d[j]);
              }
            }
          }
          ih_started = hh_started = true;
          if (gx_p != nullptr) {  // dx = dz @ w_ih needs every column of dz: rows split between the threads
            barrier.wait();
            const auto [x0, x1] = rows_of(rows, p, parts);
            raw_gemm(x1 - x0, G, I, dz_p + x0 * G, G, w_ih_p, I, gx_p + (dz_base + x0) * I, I, false);
            barrier.wait();  // dz's rows free for the next chunk
          }
          k_hi = k_lo;
        }
      }
    }
  } else {
    for (auto it = s.order.rbegin(); it != s.order.rend(); ++it) {
      const int64_t t = *it, n = s.size[t], row = s.offset[t];
      const Tensor grad = grad_rows.narrow(0, row, n);
      Tensor dh = proj ? dh_all.narrow(0, row, n) : dh_step.narrow(0, 0, n);
      const bool sum_in_rows = !proj && !zoning_h;  // then the row sweep adds the fed-back gradient itself
      if (!sum_in_rows) at::add_out(dh, proj ? dh : grad, dh_state.narrow(0, 0, n));
      if (zoning_h) {  // h = h_new + d (h_prev - h_new)
        Tensor keep = zh_rows.defined() ? zh_rows.narrow(0, row, n) : at::scalar_tensor(zoneout_h, opts);
        Tensor to_prev = dh_to_prev.narrow(0, 0, n);
        at::mul_out(to_prev, dh, keep);
        dh.sub_(dh_to_prev.narrow(0, 0, n));
      }
      Tensor d_cell = dh;
      if (proj) {
        round_bf16_tensor(round_dz, dh);  // the left operand of dh @ w_hr
        d_cell = dh_cell.narrow(0, 0, n);
        step_gemm(d_cell, dh, w_hr_n, false);
      }
      a.gates = ptr<S>(gates) + row * G;
      a.tanh_c = ptr<S>(tanh_c) + row * H;
      a.t = t;
      a.c_new = ptr<S>(c_new) + row * H;
      a.dh = ptr<S>(d_cell);
      a.dh_sum = sum_in_rows ? ptr<S>(dh) : nullptr;
      a.dh_in = ptr<S>(grad);
      a.dh_rec = sum_in_rows ? ptr<S>(dh_state) : nullptr;
      a.dc = dc_state.template data_ptr<A>();
      a.dz = ptr<S>(dz) + row * G;
      if (zoning_c) {
        a.zc = zc_rows.defined() ? ptr<S>(zc_rows) + row * H : ptr<S>(zc_const);
        a.zc_stride = zc_rows.defined() ? H : 0;
      }
      if (ln_c_w.defined()) {
        a.d_normed = ptr<S>(d_normed) + row * H;
        a.stats_c = ptr<S>(stats_c) + row;
        a.stats_stride = N;
      }
      at::parallel_for(0, n, grain_for(8 * H), [&](int64_t b0, int64_t b1) { rows_fn(a, b0, b1, 0, H); });
      Tensor dz_t = dz.narrow(0, row, n);
      round_bf16_tensor(round_dz, dz_t);
      Tensor back = dz_t;
      if (ln_hh_w.defined()) {
        back = d_rh.narrow(0, row, n);
        auto* stats = ptr<S>(stats_hh) + row;
        at::parallel_for(0, n, grain_for(2 * G), [&](int64_t b0, int64_t b1) {
          ln_backward_rows<S>(ptr<S>(dz_t), ptr<S>(rh) + row * G, ptr<S>(ln_hh_w), stats, N, ptr<S>(back), G, b0, b1);
        });
        round_bf16_tensor(round_dz, back);
      }
      Tensor dhs = dh_state.narrow(0, 0, n);
      step_gemm(dhs, back, w_hh, false);  // (n, P) gradient of the h fed back
      if (rec_mask.defined()) dhs.mul_(rec_mask.narrow(0, 0, n));
      if (zoning_h) dhs.add_(dh_to_prev.narrow(0, 0, n));
    }
  }

  // the weight gradients: one GEMM each over all rows
  auto none = [&] { return at::empty({0}, opts); };
  std::vector<Tensor> g(14);
  g[1] = dh_state;
  g[2] = dc_state.to(x.scalar_type());
  const bool ln_ih = ln_ih_w.has_value() && ln_ih_w->defined();
  // a fresh tensor of x's dtype from a row of double sums (never an alias: outputs of an operator must not share)
  const auto sum_out = [&](const Tensor& sums) { return sums.to(x.scalar_type(), false, true); };
  if (!d_x_proj.defined()) d_x_proj = dz;  // (folded: made in the loop)
  if (fold_sums) {  // the threads' partial sums of fold_rows
    Tensor sums = at::zeros({fold_w}, opts.dtype(at::kDouble));
    double* sp = sums.data_ptr<double>();
    for (int p = 0; p < threads; ++p)
      for (int64_t k = 0; k < fold_w; ++k) sp[k] += fold_part[p * fold_w + k];
    const Tensor gate_sums = sums.narrow(0, 0, 3 * G).view({3, G});
    const Tensor cell_sums = sums.narrow(0, 3 * G, 5 * H).view({5, H});
    if (want[5]) g[5] = sum_out(gate_sums[0]);
    if (ln_ih && want[8]) g[8] = sum_out(gate_sums[1]);
    if (ln_ih && want[9]) g[9] = sum_out(gate_sums[0]);
    if (ln_hh_w.defined() && want[10]) g[10] = sum_out(gate_sums[2]);
    if (ln_hh_w.defined() && want[11]) g[11] = sum_out(gate_sums[0]);
    if (peep_grad) g[7] = sum_out(cell_sums.narrow(0, 0, 3));
    if (ln_c_w.defined() && want[12]) g[12] = sum_out(cell_sums[3]);
    if (ln_c_w.defined() && want[13]) g[13] = sum_out(cell_sums[4]);
  } else if (ln_ih || ln_hh_w.defined()) {
    // one pass over dz: the bias and both LNs' gains and biases, and dz through LN of x W_ih^T (for dx, dW_ih)
    const Tensor ln_ih_w_c = ln_ih ? ln_ih_w->contiguous() : Tensor();
    GateColumnSums<S> cs;
    cs.dz = ptr<S>(dz);
    if (ln_ih) {
      cs.ln_in[0] = ptr<S>(x_proj), cs.ln_stats[0] = ptr<S>(stats_ih), cs.ln_ih_w = ptr<S>(ln_ih_w_c);
      if (want[0] || want[3]) d_x_proj = pooled_empty({N, G}, opts), cs.d_x_proj = ptr<S>(d_x_proj);
    }
    if (ln_hh_w.defined() && want[10]) cs.ln_in[1] = ptr<S>(rh), cs.ln_stats[1] = ptr<S>(stats_hh);
    const Tensor sums = gate_column_sums<S>(cs, N, G);
    if (ln_ih && (want[0] || want[3])) round_bf16_tensor(round_dz, d_x_proj);  // the left operand of dx, dW_ih
    if (want[5]) g[5] = sum_out(sums[0]);
    if (ln_ih && want[8]) g[8] = sum_out(sums[1]);
    if (ln_ih && want[9]) g[9] = sum_out(sums[0]);
    if (ln_hh_w.defined() && want[10]) g[10] = sum_out(sums[2]);
    if (ln_hh_w.defined() && want[11]) g[11] = sum_out(sums[0]);
  } else if (fold_db) {  // summed in the loop: the rows loop's partial sums of each thread added here
    for (size_t k = G; k < db_acc.size(); ++k) db_acc[k % G] += db_acc[k];
    db_acc.resize(G);
    g[5] = at::tensor(db_acc, at::kDouble).to(x.scalar_type());
  } else if (want[5] && !chunked) {  // (chunked: summed chunk by chunk in the loop, below)
    g[5] = dz.sum(0);
  }
  if (chunked) {
    if (want[0]) g[0] = g_x.view(x_in.sizes());
    if (want[3]) g[3] = g_w_ih;
    if (want[4]) g[4] = g_w_hh;
    if (want[5]) g[5] = at::tensor(db_acc, at::kDouble).to(x.scalar_type());
  }
  if (dw_in_loop) {  // made in the loop
    if (want[0]) g[0] = g_x.view(x_in.sizes());
    if (want[3]) g[3] = g_w_ih;
    if (want[4]) g[4] = g_w_hh;
  }
  if (want[0] && !chunked && !dw_in_loop) {
    g[0] = pooled_empty({N, w_ih.size(1)}, opts);
    at::mm_out(g[0], d_x_proj, w_ih);
    g[0] = g[0].view(x_in.sizes());
  }
  if (want[3] && !chunked && !dw_in_loop) g[3] = at::mm(d_x_proj.t(), x);
  if (chunked || dw_in_loop) {
  } else if (want[4] && s.uniform) {
    // padded input: the previous h of the rows are the outputs shifted by one step and h0, so two GEMMs on views
    // instead of gathering an (N, P) copy (two, transiently); with recurrent dropout each step's rows are the
    // batch in order, so the mask multiplies them as one (B, P) broadcast over the steps
    const Tensor d = (d_rh.defined() ? d_rh : dz);
    const Tensor out = output.reshape({N, P});
    const int64_t later = N - batch;  // rows whose previous h is an output
    const Tensor d_first = reverse ? d.narrow(0, later, batch) : d.narrow(0, 0, batch);  // rows after h0
    const Tensor h_first = rec_mask.defined() ? (h0 * rec_mask).contiguous() : h0;
    if (rec_mask.defined()) round_bf16_tensor(round_dz, h_first);  // as the forward's GEMM read it
    g[4] = at::mm(d_first.t(), h_first);
    if (later > 0) {
      const Tensor d_rest = reverse ? d.narrow(0, 0, later) : d.narrow(0, batch, later);
      Tensor h_rest = reverse ? out.narrow(0, batch, later) : out.narrow(0, 0, later);
      if (rec_mask.defined()) {
        h_rest = (h_rest.view({later / batch, batch, P}) * rec_mask).view({later, P});
        round_bf16_tensor(round_dz, h_rest);  // as the forward's GEMM read it
      }
      g[4].addmm_(d_rest.t(), h_rest);
    }
  } else if (want[4]) {
    Tensor h_prev = gather_prev(output, h0, s);
    if (rec_mask.defined()) {
      std::vector<int64_t> bidx(N);
      for (int64_t t = 0; t < static_cast<int64_t>(s.size.size()); ++t)
        for (int64_t b = 0; b < s.size[t]; ++b) bidx[s.offset[t] + b] = b;
      h_prev = h_prev * rec_mask.index_select(0, at::tensor(bidx, at::kLong));
      round_bf16_tensor(round_dz, h_prev);  // as the forward's GEMM read it
    }
    g[4] = at::mm((d_rh.defined() ? d_rh : dz).t(), h_prev);
  }
  if (proj && want[6]) g[6] = at::mm(dh_all.t(), h_raw);
  if (!fold_sums && (peep_grad || ln_c_grad)) {  // the peepholes' and LN of c's gradients in one pass over the cells
    Tensor sums = at::zeros({5, H}, opts.dtype(at::kDouble));
    double* sp = sums.data_ptr<double>();
    std::vector<int64_t> prev;
    CellColumnSums<S> cs;
    cs.dz = ptr<S>(dz);
    cs.c_new = ptr<S>(c_new);
    if (peep_grad) {
      prev.resize(N);
      for (int64_t t = 0; t < static_cast<int64_t>(s.size.size()); ++t)
        for (int64_t b = 0; b < s.size[t]; ++b) prev[s.offset[t] + b] = s.prev_row(t, b);
      cs.cells = ptr<S>(cells);
      cs.c0 = ptr<S>(c0);
      cs.prev = prev.data();
      cs.peep = sp;
    }
    if (ln_c_grad) {
      cs.d_normed = ptr<S>(d_normed);
      cs.stats_c = ptr<S>(stats_c);
      cs.ln_w = sp + 3 * H;
      cs.ln_b = sp + 4 * H;
    }
    cell_column_sums<S>(cs, N, H);
    if (peep_grad) g[7] = sum_out(sums.narrow(0, 0, 3));
    if (ln_c_w.defined() && want[12]) g[12] = sum_out(sums[3]);
    if (ln_c_w.defined() && want[13]) g[13] = sum_out(sums[4]);
  }
  for (int k = 0; k < 14; ++k)
    if (!want[k] || !g[k].defined()) g[k] = none();
  return g;
}

// float32 copies of a bfloat16 call's tensors (exact: every bfloat16 value is a float32 value)
Tensor f32(const Tensor& t) { return pooled_to(t, at::kFloat); }
optional<Tensor> f32(const optional<Tensor>& t) {
  return t.has_value() && t->defined() ? optional<Tensor>(pooled_to(*t, at::kFloat)) : t;
}

void check_args(const Tensor& x, const Tensor& h0, const Tensor& c0) {
  TORCH_CHECK(x.device().is_cpu(), "lstmkit::lstm_layer C++ kernel: x must be on the CPU, got ", x.device());
  TORCH_CHECK(h0.scalar_type() == x.scalar_type() && c0.scalar_type() == x.scalar_type(),
              "lstmkit::lstm_layer: h0, c0 and x must share a dtype, got ", h0.scalar_type(), ", ",
              c0.scalar_type(), " and ", x.scalar_type());
}

std::vector<Tensor> forward(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
    const optional<Tensor>& b_ih, const optional<Tensor>& b_hh, const optional<Tensor>& w_hr,
    const optional<Tensor>& batch_sizes, bool reverse, const optional<Tensor>& peephole,
    const optional<Tensor>& ln_ih_w, const optional<Tensor>& ln_ih_b, const optional<Tensor>& ln_hh_w,
    const optional<Tensor>& ln_hh_b, const optional<Tensor>& ln_c_w, const optional<Tensor>& ln_c_b,
    const optional<Tensor>& rec_mask, const optional<Tensor>& zh_mask, const optional<Tensor>& zc_mask,
    double zoneout_h, double zoneout_c, optional<double> cell_clip, bool need_ws) {
  check_args(x, h0, c0);
  const Tensor xc = x.contiguous(), h0c = h0.contiguous(), c0c = c0.contiguous();
  if (x.scalar_type() == at::kBFloat16 && bf16_gemm() == "float32") {  // float32 kernel, bf16 GEMM operands
    std::vector<Tensor> r = forward_impl<float>(
        f32(xc), f32(h0c), f32(c0c), f32(w_ih), f32(w_hh), f32(b_ih), f32(b_hh), f32(w_hr), batch_sizes, reverse,
        f32(peephole), f32(ln_ih_w), f32(ln_ih_b), f32(ln_hh_w), f32(ln_hh_b), f32(ln_c_w), f32(ln_c_b),
        f32(rec_mask), f32(zh_mask), f32(zc_mask), zoneout_h, zoneout_c, cell_clip, need_ws, /*round_h=*/true);
    for (int k = 0; k < 3; ++k) r[k] = pooled_to(r[k], at::kBFloat16);  // exact for output and h_n (rounded already)
    return r;  // the workspace in float32 (layer_op.workspace_dtype)
  }
  switch (x.scalar_type()) {
#define CASE(S, T)                                                                                                \
  case at::k##S:                                                                                                  \
    return forward_impl<T>(xc, h0c, c0c, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, peephole, ln_ih_w,   \
                           ln_ih_b, ln_hh_w, ln_hh_b, ln_c_w, ln_c_b, rec_mask, zh_mask, zc_mask, zoneout_h,     \
                           zoneout_c, cell_clip, need_ws);
    CASE(Float, float)
    CASE(Double, double)
    CASE(BFloat16, c10::BFloat16)
#undef CASE
    default:
      TORCH_CHECK(false, "lstmkit::lstm_layer C++ kernel: dtype ", x.scalar_type(),
                  " is not supported (float32, float64, bfloat16)");
  }
}

std::vector<Tensor> backward(
    const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& grad_c_n, const Tensor& x, const Tensor& h0,
    const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh, const optional<Tensor>& w_hr,
    const optional<Tensor>& batch_sizes, bool reverse, const optional<Tensor>& peephole,
    const optional<Tensor>& ln_ih_w, const optional<Tensor>& ln_ih_b, const optional<Tensor>& ln_hh_w,
    const optional<Tensor>& ln_hh_b, const optional<Tensor>& ln_c_w, const optional<Tensor>& ln_c_b,
    const optional<Tensor>& rec_mask, const optional<Tensor>& zh_mask, const optional<Tensor>& zc_mask,
    double zoneout_h, double zoneout_c, optional<double> cell_clip, const Tensor& output, const Tensor& gates,
    const Tensor& cells, const Tensor& c_new, const Tensor& tanh_c, const Tensor& h_raw, const Tensor& x_proj,
    const Tensor& rh, const Tensor& stats_ih, const Tensor& stats_hh, const Tensor& stats_c,
    const std::vector<bool>& output_mask) {
  check_args(x, h0, c0);
  TORCH_CHECK(output_mask.size() == 14, "lstmkit::lstm_layer_backward: output_mask needs 14 entries, got ",
              output_mask.size());
  TORCH_CHECK(gates.numel() > 0, "lstmkit::lstm_layer_backward: the forward kept no workspace (need_workspace)");
  const auto c = [](const Tensor& t) { return t.contiguous(); };
  if (x.scalar_type() == at::kBFloat16 && bf16_gemm() == "float32") {  // float32 kernel, bf16 GEMM operands
    const auto fc = [](const Tensor& t) { return pooled_to(t, at::kFloat).contiguous(); };
    std::vector<Tensor> g = backward_impl<float>(
        fc(grad_output), fc(grad_h_n), fc(grad_c_n), fc(x), fc(h0), fc(c0), f32(w_ih), f32(w_hh), f32(w_hr),
        batch_sizes, reverse, f32(peephole), f32(ln_ih_w), f32(ln_ih_b), f32(ln_hh_w), f32(ln_hh_b), f32(ln_c_w),
        f32(ln_c_b), f32(rec_mask), f32(zh_mask), f32(zc_mask), zoneout_h, zoneout_c, cell_clip, fc(output),
        fc(gates), fc(cells), fc(c_new), fc(tanh_c), fc(h_raw), fc(x_proj), fc(rh), fc(stats_ih), fc(stats_hh),
        fc(stats_c), output_mask, /*round_dz=*/true);
    for (auto& t : g) t = pooled_to(t, at::kBFloat16);
    return g;
  }
  const auto go = grad_output.to(x.scalar_type()).contiguous();
  const auto gh = grad_h_n.to(x.scalar_type()).contiguous(), gc = grad_c_n.to(x.scalar_type()).contiguous();
  switch (x.scalar_type()) {
#define CASE(S, T)                                                                                                \
  case at::k##S:                                                                                                  \
    return backward_impl<T>(go, gh, gc, c(x), c(h0), c(c0), w_ih, w_hh, w_hr, batch_sizes, reverse, peephole,     \
                            ln_ih_w, ln_ih_b, ln_hh_w, ln_hh_b, ln_c_w, ln_c_b, rec_mask, zh_mask, zc_mask,       \
                            zoneout_h, zoneout_c, cell_clip, c(output), c(gates), c(cells), c(c_new), c(tanh_c), \
                            c(h_raw), c(x_proj), c(rh), c(stats_ih), c(stats_hh), c(stats_c), output_mask);
    CASE(Float, float)
    CASE(Double, double)
    CASE(BFloat16, c10::BFloat16)
#undef CASE
    default:
      TORCH_CHECK(false, "lstmkit::lstm_layer_backward C++ kernel: dtype ", x.scalar_type(),
                  " is not supported (float32, float64, bfloat16)");
  }
}

// ------------------------------------------------------------------------------------------------ mask draws

// lstmkit.ops.masks draws its masks from 16-bit lanes of the int64 words `empty(n).random_(-2**63, None)` fills,
// then compares and converts in two more passes over the mask. This is the same draw in one pass: the same words
// from the same generator state (two 32-bit outputs of torch's mt19937 per word, the first in the high half, as
// CPUGeneratorImpl::random64 combines them), each lane compared with `threshold` as a signed 16-bit integer,
// `below` or `at_or_above` stored, and the generator left where random_ would have left it (its engine state is
// read and written back under the generator's lock; random_ calls an out-of-line random64 per word, ~4 ns each
// here). Zoneout's two (T, B, H) masks were ~0.3 ms of a 3 ms training step at T=35 B=16 H=128
// (benchmarks/RESULTS.md, "Session 7: variants at H = 128"); tests/ops/test_masks.py checks that values and the
// generator's state after equal the tensor draw's.
// torch's mt19937 (ATen/core/MT19937RNGEngine.h) in bulk: `count` successive outputs of operator() from the state
// `d`, written to out[i ^ 1] (each pair swapped: a random64 word is (first << 32) | second, so in memory its 16-bit
// lanes run second-low, second-high, first-low, first-high). Same state update and tempering, in loops the
// compiler vectorises; the state is left as the engine would leave it.
void mt_twist(uint32_t* s) {
  constexpr int N = 624, M = 397;
  const auto twist = [](uint32_t u, uint32_t v) {
    return (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ ((0u - (v & 1u)) & 0x9908b0dfu);
  };
  for (int j = 0; j < N - M; ++j) s[j] = s[j + M] ^ twist(s[j], s[j + 1]);
  for (int j = N - M; j < N - 1; ++j) s[j] = s[j + M - N] ^ twist(s[j], s[j + 1]);
  s[N - 1] = s[M - 1] ^ twist(s[N - 1], s[0]);
}

void mt_outputs(at::mt19937_data_pod& d, uint32_t* out, int64_t count) {
  uint32_t* s = d.state_.data();
  int64_t i = 0;
  while (i < count) {
    if (d.left_ == 1) {  // the engine's `--left_ == 0`: a new block, whose first output is state_[0]
      mt_twist(s);
      d.left_ = 625;
      d.next_ = 0;
    }
    const int64_t take = std::min<int64_t>(count - i, d.left_ - 1);
    const uint32_t* src = s + d.next_;
#pragma omp simd
    for (int64_t k = 0; k < take; ++k) {
      uint32_t y = src[k];
      y ^= (y >> 11);
      y ^= (y << 7) & 0x9d2c5680u;
      y ^= (y << 15) & 0xefc60000u;
      y ^= (y >> 18);
      out[(i + k) ^ 1] = y;
    }
    d.next_ += take;
    d.left_ -= take;
    i += take;
  }
}

// A mask of at least kFillPipelineChunks chunks is drawn by two threads: one runs the engine into a ring of chunks
// (the mt19937 stream is sequential), the other turns each chunk's lanes into the mask's values and stores them
// (a zoneout mask at T=35 B=64 H=128 is 1.1 MB written, from cold caches after another model's step). The values and
// the generator's state after are the serial loop's; last_fill_threads says which ran (tests).
constexpr int64_t kFillChunk = 2048;  // lanes per chunk: 512 words, 1024 engine outputs
constexpr int64_t kFillPipelineChunks = 16;
std::atomic<int> last_fill_threads{0};

template <typename S>
void fill_lanes_impl(Tensor& out, int64_t threshold, double below, double at_or_above, at::CPUGeneratorImpl* gen) {
  using R = typename Num<S>::raw;
  using A = typename Num<S>::acc;
  R* o = ptr<S>(out);
  const int64_t count = out.numel();
  const A lo = static_cast<A>(below), hi = static_cast<A>(at_or_above);
  const auto limit = static_cast<int16_t>(threshold);
  const int64_t chunks = (count + kFillChunk - 1) / kFillChunk;
  // (by value: stores through o could otherwise alias lo and hi, and the loop would reload them instead of vectorising)
  const auto store_chunk = [o, count, lo, hi, limit](const uint32_t* words, int64_t c) {  // chunk c's lanes, stored
    const auto* lanes = reinterpret_cast<const int16_t*>(words);
    const int64_t e0 = c * kFillChunk, n = std::min(kFillChunk, count - e0);
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) store(o, e0 + k, lanes[k] < limit ? lo : hi);
  };
  const auto words_of = [count](int64_t c) { return 2 * ((std::min(kFillChunk, count - c * kFillChunk) + 3) / 4); };
  std::lock_guard<std::mutex> lock(gen->mutex_);
  at::mt19937 engine = gen->engine();
  at::mt19937_data_pod d = engine.data();
  int used_threads = 1;
  const char* pipeline = std::getenv("LSTMKIT_FILL_PIPELINE");  // 0: the serial loop always (comparisons)
  if (chunks >= kFillPipelineChunks && at::get_num_threads() > 1 && !omp_in_parallel() &&
      (pipeline == nullptr || std::atoi(pipeline) != 0)) {
    constexpr int64_t kRing = 8;
    std::vector<uint32_t> ring(kRing * kFillChunk / 2);
    std::atomic<int64_t> made{0}, stored{0};  // chunks the engine has written / the other thread has stored
    const auto wait_until = [](const std::atomic<int64_t>& v, const auto& ready) {
      spin_until([&] { return ready(v.load(std::memory_order_acquire)); });
    };
#pragma omp parallel num_threads(2)
    {
      const int parts = omp_get_num_threads(), p = omp_get_thread_num();
      if (parts == 1) {  // no second thread after all: the serial loop
        for (int64_t c = 0; c < chunks; ++c) {
          mt_outputs(d, ring.data(), words_of(c));
          store_chunk(ring.data(), c);
        }
      } else if (p == 0) {
        used_threads = 2;  // read after the region's closing barrier
        for (int64_t c = 0; c < chunks; ++c) {
          wait_until(stored, [c](int64_t v) { return c - v < kRing; });  // its slot stored
          mt_outputs(d, ring.data() + (c % kRing) * (kFillChunk / 2), words_of(c));
          made.store(c + 1, std::memory_order_release);
        }
      } else if (p == 1) {
        for (int64_t c = 0; c < chunks; ++c) {
          wait_until(made, [c](int64_t v) { return v > c; });
          store_chunk(ring.data() + (c % kRing) * (kFillChunk / 2), c);
          stored.store(c + 1, std::memory_order_release);
        }
      }
    }
  } else {
    alignas(64) uint32_t buf[kFillChunk / 2];
    const auto* lanes = reinterpret_cast<const int16_t*>(buf);
    for (int64_t e0 = 0; e0 < count; e0 += kFillChunk) {
      const int64_t n = std::min(kFillChunk, count - e0);
      mt_outputs(d, buf, 2 * ((n + 3) / 4));  // whole words, as random_ draws them
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) store(o, e0 + k, lanes[k] < limit ? lo : hi);
    }
  }
  last_fill_threads.store(used_threads, std::memory_order_relaxed);
  engine.set_data(d);
  gen->set_engine(engine);
}

void fill_lanes(Tensor out, int64_t threshold, double below, double at_or_above, optional<at::Generator> generator) {
  TORCH_CHECK(out.device().is_cpu() && out.is_contiguous(), "lstmkit fill_lanes: out must be a contiguous CPU tensor");
  auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(generator, at::detail::getDefaultCPUGenerator());
  switch (out.scalar_type()) {
    case at::kFloat: return fill_lanes_impl<float>(out, threshold, below, at_or_above, gen);
    case at::kDouble: return fill_lanes_impl<double>(out, threshold, below, at_or_above, gen);
    case at::kBFloat16: return fill_lanes_impl<c10::BFloat16>(out, threshold, below, at_or_above, gen);
    default: TORCH_CHECK(false, "lstmkit fill_lanes: dtype ", out.scalar_type(), " is not supported");
  }
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lstmkit's C++ CPU kernels of lstmkit::lstm_layer and its backward (see lstmkit/ops/layer_op.py)";
  m.def("forward", &forward, "forward of lstmkit::lstm_layer");
  m.def("backward", &backward, "backward of lstmkit::lstm_layer");
  m.attr("source_hash") = LSTMKIT_SOURCE_HASH;
  m.def("bf16_gemm", &bf16_gemm, "how a bfloat16 call computes: 'native' (bfloat16 GEMMs) or 'float32' (the float32 "
        "kernel with bfloat16-rounded GEMM operands); LSTMKIT_CPP_BF16 forces one, else native with AMX-BF16");
  m.def("host_amx_bf16", &host_amx_bf16, "whether the CPU reports AMX-BF16 (CPUID leaf 7, EDX bit 22)");
  m.def("fill_lanes", &fill_lanes, "fill out with `below` where a 16-bit lane of torch's random_ words is below "
        "threshold, else `at_or_above` (lstmkit.ops.masks)", py::arg("out"), py::arg("threshold"), py::arg("below"),
        py::arg("at_or_above"), py::arg("generator") = py::none());
  m.def("last_fill_threads", [] { return last_fill_threads.load(); },
        "threads the last fill_lanes call drew with: 2 (engine and stores pipelined) or 1 (tests)");
  m.def("last_loops", [] {
    static const char* names[] = {"steps", "units", "rows"};
    const int f = last_forward_loop.load(), b = last_backward_loop.load();
    return std::make_pair(std::string(f < 0 ? "none" : names[f]), std::string(b < 0 ? "none" : names[b]));
  }, "(forward, backward): the time loop each kernel's last call took: 'steps', 'units' or 'rows' (tests)");
  m.def("last_gate_rows", [] { return last_gate_rows.load(); },
        "rows of the gate pre-activations the last forward call kept at once: N, or a chunk's rows when an "
        "inference call made x W_ih^T chunk by chunk (tests)");
  m.def("workspace_pool_clear", [] {
    WorkspacePool& pool = workspace_pool();
    std::lock_guard<std::mutex> lock(pool.mu);
    pool.drop_idle(0);
    pool.busy_peak = 0;
  }, "free the workspace pool's idle buffers (those no tensor refers to)");
  m.def("workspace_pool_stats", [] {
    WorkspacePool& pool = workspace_pool();
    std::lock_guard<std::mutex> lock(pool.mu);
    int64_t idle = 0;
    for (const auto& e : pool.entries) idle += e.storage.use_count() == 1 ? e.bytes : 0;
    return std::make_tuple(pool.held, idle, pool.hits, pool.misses);
  }, "(bytes held, bytes idle, hits, misses) of the workspace pool of large buffers");
  m.def("pooled_empty", [](std::vector<int64_t> shape, at::ScalarType dtype) {
    return pooled_empty(shape, at::TensorOptions().dtype(dtype));
  }, "an uninitialised CPU tensor like torch.empty, from the workspace pool when large (tests, masks)");
  m.def("pack_arena_bytes", [] { return static_cast<int64_t>(thread_pack_arena().capacity); },
        "bytes of the calling thread's buffer for packed weight slices, kept between calls (tests)");
  m.def("release_pack_arena", [] {
    PackArena& arena = thread_pack_arena();
    std::free(arena.data);
    arena.data = nullptr;
    arena.capacity = arena.used = arena.wanted = 0;
  }, "free the calling thread's packing buffer (between calls only; tests start from an empty one)");
  m.def("last_gate_products", [] { return last_gate_products.load(); },
        "products of h W_hh^T per step and thread in the last forward through the partitioned loop: 1 (a thread's "
        "whole weight, or its four gate blocks joined) or 4 (one per gate block) (tests)");
  m.def("last_dw_chunk_rows", [] { return last_dw_chunk_rows.load(); },
        "rows per chunk when the last backward call added the weight gradients chunk by chunk in the rows loop, else "
        "0 (tests)");
  m.def("last_dz_rows", [] { return last_dz_rows.load(); },
        "rows of dz the last backward call kept at once: N, or a chunk's rows when it added the gradients chunk by "
        "chunk (tests)");
}
