// Gradients of the CPU reference ops (see backward.h). Plain loops in a fixed order; oneTBB over
// independent outputs only, never over a reduction, so results are identical for any thread count.
#include "runtime/cpu/backward.h"

#include "runtime/cpu/ops.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace hrm::cpu {
namespace {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

namespace {

// y += a * x over n floats. The restrict qualifiers let the compiler vectorise (the callers' pointers
// never overlap); each element's arithmetic is the same as the plain loop's.
inline void axpy(float* __restrict y, float a, const float* __restrict x, int64_t n) {
  for (int64_t d = 0; d < n; ++d) y[d] += a * x[d];
}

// out[c, r] = in[r, c] for a [rows, cols] matrix.
void transpose(const float* in, int64_t rows, int64_t cols, float* out) {
  constexpr int64_t kBlock = 32;  // cache-sized tiles
  const int64_t row_blocks = (rows + kBlock - 1) / kBlock;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, row_blocks, 1), [&](const auto& r) {
    for (int64_t rb = r.begin(); rb < r.end(); ++rb)
      for (int64_t c0 = 0; c0 < cols; c0 += kBlock)
        for (int64_t i = rb * kBlock; i < std::min(rows, (rb + 1) * kBlock); ++i)
          for (int64_t c = c0; c < std::min(cols, c0 + kBlock); ++c) out[c * rows + i] = in[i * cols + c];
  });
}

void add_to(float* dst, const float* src, int64_t n) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 1 << 14), [&](const auto& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) dst[i] += src[i];
  });
}

}  // namespace

// Both gradients are matmul_nt on transposed operands: its register-blocked dot products are about
// twice as fast here as row-axpy loops, and it is deterministic. The transposes cost O(size) only.
void matmul_nn(const float* dy, int64_t rows, int64_t out, const float* w, int64_t in, float* dx,
               bool accumulate) {
  std::vector<float> wt(out * in);
  transpose(w, out, in, wt.data());
  if (!accumulate) {
    matmul_nt(dy, rows, out, wt.data(), in, dx);
    return;
  }
  std::vector<float> tmp(rows * in);
  matmul_nt(dy, rows, out, wt.data(), in, tmp.data());
  add_to(dx, tmp.data(), rows * in);
}

void matmul_tn_acc(const float* dy, int64_t rows, int64_t out, const float* x, int64_t in, float* dw) {
  std::vector<float> dyt(rows * out), xt(rows * in), tmp(out * in);
  transpose(dy, rows, out, dyt.data());
  transpose(x, rows, in, xt.data());
  matmul_nt(dyt.data(), out, rows, xt.data(), in, tmp.data());
  add_to(dw, tmp.data(), out * in);
}

void rms_norm_backward(const float* x, const float* dy, int64_t rows, int64_t dim, float eps, float* dx,
                       bool accumulate) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) {
      const float* xi = x + i * dim;
      const float* gi = dy + i * dim;
      const float inv_dim = 1.0f / static_cast<float>(dim);
      const float rstd = 1.0f / std::sqrt(dot(xi, xi, dim) * inv_dim + eps);
      // d/dx_j of x_k * r: r*δ_jk - x_k x_j r^3 / dim.
      const float coeff = dot(gi, xi, dim) * inv_dim * rstd * rstd * rstd;
      float* di = dx + i * dim;
      for (int64_t j = 0; j < dim; ++j) {
        const float g = gi[j] * rstd - xi[j] * coeff;
        di[j] = accumulate ? di[j] + g : g;
      }
    }
  });
}

void silu_mul_backward(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 4096), [&](const auto& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) {
      const float s = sigmoid(g[i]);
      const float silu = g[i] * s;
      // silu'(g) = s + g*s*(1-s)
      dg[i] = dy[i] * u[i] * (s + silu * (1.0f - s));
      du[i] = dy[i] * silu;
    }
  });
}

void prefix_attention(const float* q, const float* k, const float* v, std::span<const SeqSpan> seqs,
                      int64_t heads, int64_t head_dim, float* out) {
  const int64_t stride = heads * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const int64_t jobs = static_cast<int64_t>(seqs.size()) * heads;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, jobs, 1), [&](const auto& r) {
    std::vector<float> p;
    for (int64_t job = r.begin(); job < r.end(); ++job) {
      const SeqSpan& s = seqs[job / heads];
      const int64_t h = job % heads;
      p.resize(s.len);
      for (int64_t i = 0; i < s.len; ++i) {
        const float* qi = q + (s.start + i) * stride + h * head_dim;
        const int64_t visible = std::min(s.len, std::max(s.prefix, i + 1));
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < visible; ++j) {
          p[j] = dot(qi, k + (s.start + j) * stride + h * head_dim, head_dim) * scale;
          mx = std::max(mx, p[j]);
        }
        float denom = 0.f;
        for (int64_t j = 0; j < visible; ++j) {
          p[j] = std::exp(p[j] - mx);
          denom += p[j];
        }
        float* o = out + (s.start + i) * stride + h * head_dim;
        std::fill(o, o + head_dim, 0.f);
        for (int64_t j = 0; j < visible; ++j) {
          axpy(o, p[j] / denom, v + (s.start + j) * stride + h * head_dim, head_dim);
        }
      }
    }
  });
}

void prefix_attention_backward(const float* q, const float* k, const float* v, const float* out,
                               const float* dout, std::span<const SeqSpan> seqs, int64_t heads,
                               int64_t head_dim, float* dq, float* dk, float* dv) {
  const int64_t stride = heads * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const int64_t jobs = static_cast<int64_t>(seqs.size()) * heads;
  // Each job owns the rows of one sequence in one head's columns, so writes never overlap.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, jobs, 1), [&](const auto& r) {
    std::vector<float> p;
    for (int64_t job = r.begin(); job < r.end(); ++job) {
      const SeqSpan& s = seqs[job / heads];
      const int64_t h = job % heads;
      auto at = [&](float* base, int64_t row) { return base + (s.start + row) * stride + h * head_dim; };
      auto at_c = [&](const float* base, int64_t row) {
        return base + (s.start + row) * stride + h * head_dim;
      };
      for (int64_t i = 0; i < s.len; ++i) {
        std::fill(at(dk, i), at(dk, i) + head_dim, 0.f);
        std::fill(at(dv, i), at(dv, i) + head_dim, 0.f);
      }
      p.resize(s.len);
      for (int64_t i = 0; i < s.len; ++i) {
        const float* qi = at_c(q, i);
        const float* gi = at_c(dout, i);
        const int64_t visible = std::min(s.len, std::max(s.prefix, i + 1));
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < visible; ++j) {
          p[j] = dot(qi, at_c(k, j), head_dim) * scale;
          mx = std::max(mx, p[j]);
        }
        float denom = 0.f;
        for (int64_t j = 0; j < visible; ++j) {
          p[j] = std::exp(p[j] - mx);
          denom += p[j];
        }
        for (int64_t j = 0; j < visible; ++j) p[j] /= denom;
        // Softmax backward: ds_j = p_j (dp_j - sum_l p_l dp_l), and sum_l p_l dp_l = dout_i . out_i.
        const float row_dot = dot(gi, at_c(out, i), head_dim);
        float* dqi = at(dq, i);
        std::fill(dqi, dqi + head_dim, 0.f);
        for (int64_t j = 0; j < visible; ++j) {
          const float* vj = at_c(v, j);
          const float ds = p[j] * (dot(gi, vj, head_dim) - row_dot) * scale;
          axpy(dqi, ds, at_c(k, j), head_dim);
          axpy(at(dk, j), ds, qi, head_dim);
          axpy(at(dv, j), p[j], gi, head_dim);
        }
      }
    }
  });
}

}  // namespace hrm::cpu
