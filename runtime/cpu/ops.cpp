// CPU reference ops (see ops.h). Plain loops; oneTBB over independent outputs.
#include "runtime/cpu/ops.h"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace hrm::cpu {
namespace {

// Rows of x that share one pass over a weight row (register blocking).
constexpr int64_t kRowTile = 4;

// Dot products of NX rows of x with NW weight rows: an NX x NW tile of kLanes-wide accumulators in
// registers (4 x 3 vectors of 8 floats = 12 AVX2 registers), so each loaded vector feeds several
// multiply-adds. Written with GCC vector types (one vector = the kLanes lanes of dot()), because the
// auto-vectoriser shuffles this loop nest instead. Every output keeps its own lanes and one order of
// additions (the lanes as dot() reduces them, plus the tail summed apart), whatever the tile shape, so
// results do not depend on tiling or threads.
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
static_assert(sizeof(Lanes) == kLanes * sizeof(float));

// (Through a pointer: returning a vector by value would change the ABI between the two clones.)
__attribute__((always_inline)) inline void load_lanes(Lanes* v, const float* p) { std::memcpy(v, p, sizeof *v); }

template <int NX, int NW>
__attribute__((always_inline)) inline void dot_tile(const float* const* xs, const float* const* ws, int64_t in,
                                                   float* out, int64_t out_stride) {
  Lanes acc[NX][NW] = {};
  const int64_t main = in - in % kLanes;
  for (int64_t i = 0; i < main; i += kLanes) {
    Lanes wv[NW];
    for (int c = 0; c < NW; ++c) load_lanes(&wv[c], ws[c] + i);
    for (int r = 0; r < NX; ++r) {
      Lanes xv;
      load_lanes(&xv, xs[r] + i);
      for (int c = 0; c < NW; ++c) acc[r][c] += xv * wv[c];
    }
  }
  for (int r = 0; r < NX; ++r)
    for (int c = 0; c < NW; ++c) {
      float lanes[kLanes];
      std::memcpy(lanes, &acc[r][c], sizeof lanes);
      float tail = 0.f;
      for (int64_t i = main; i < in; ++i) tail += xs[r][i] * ws[c][i];
      out[r * out_stride + c] = reduce_lanes(lanes) + tail;
    }
}

template <int NX>
__attribute__((always_inline)) inline void dot_rows(const float* const* xs, const float* w, int64_t in,
                                                    int64_t o_begin, int64_t o_end, int64_t out, float* y_rows) {
  constexpr int kW = 2;  // weight rows per tile
  int64_t o = o_begin;
  for (; o + kW <= o_end; o += kW) {
    const float* ws[kW] = {w + o * in, w + (o + 1) * in};
    dot_tile<NX, kW>(xs, ws, in, y_rows + o, out);
  }
  for (; o < o_end; ++o) {
    const float* ws[1] = {w + o * in};
    dot_tile<NX, 1>(xs, ws, in, y_rows + o, out);
  }
}

// One tile of rows against a range of weight rows. Compiled twice, for x86-64-v3 (AVX2 + FMA, any
// vendor) and for baseline x86-64; the loader picks by CPU features.
__attribute__((target_clones("arch=x86-64-v3", "default")))
void matmul_tile(const float* const* xs, int64_t nx, const float* w, int64_t in, int64_t o_begin,
                 int64_t o_end, int64_t out, float* y_rows) {
  switch (nx) {
    case 4: dot_rows<4>(xs, w, in, o_begin, o_end, out, y_rows); break;
    case 3: dot_rows<3>(xs, w, in, o_begin, o_end, out, y_rows); break;
    case 2: dot_rows<2>(xs, w, in, o_begin, o_end, out, y_rows); break;
    default: dot_rows<1>(xs, w, in, o_begin, o_end, out, y_rows); break;
  }
}

}  // namespace

void matmul_nt(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y) {
  const int64_t row_tiles = (rows + kRowTile - 1) / kRowTile;
  tbb::parallel_for(
      tbb::blocked_range2d<int64_t>(0, row_tiles, 1, 0, out, 16), [&](const auto& r) {
        for (int64_t t = r.rows().begin(); t < r.rows().end(); ++t) {
          const int64_t r0 = t * kRowTile;
          const int64_t nx = std::min(kRowTile, rows - r0);
          const float* xs[kRowTile];
          for (int64_t j = 0; j < nx; ++j) xs[j] = x + (r0 + j) * in;
          matmul_tile(xs, nx, w, in, r.cols().begin(), r.cols().end(), out, y + r0 * out);
        }
      });
}

void rms_norm(const float* x, int64_t rows, int64_t dim, float eps, float* y) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) {
      const float* xi = x + i * dim;
      const float ss = dot(xi, xi, dim);
      const float scale = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
      float* yi = y + i * dim;
      for (int64_t j = 0; j < dim; ++j) yi[j] = xi[j] * scale;
    }
  });
}

void rope_rotate_half(float* x, int64_t rows, int64_t heads, int64_t head_dim,
                      std::span<const int64_t> positions, std::span<const float> inv_freq) {
  const int64_t half = head_dim / 2;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 8), [&](const auto& r) {
    std::vector<float> cos_v(half), sin_v(half);
    for (int64_t i = r.begin(); i < r.end(); ++i) {
      const float pos = static_cast<float>(positions[i]);
      for (int64_t f = 0; f < half; ++f) {
        const float angle = pos * inv_freq[f];  // fp32, as transformers computes it
        cos_v[f] = std::cos(angle);
        sin_v[f] = std::sin(angle);
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + i * heads * head_dim + h * head_dim;
        for (int64_t f = 0; f < half; ++f) {
          const float x1 = v[f], x2 = v[f + half];
          v[f] = x1 * cos_v[f] - x2 * sin_v[f];
          v[f + half] = x2 * cos_v[f] + x1 * sin_v[f];
        }
      }
    }
  });
}

void silu_mul(const float* gate, const float* up, int64_t n, float* y) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 4096), [&](const auto& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) {
      const float g = gate[i];
      y[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void gated_attention(const float* q, const float* gate, int64_t n_q, int64_t q_start,
                     const float* k, const float* v, int64_t n_kv, int64_t prefix_len,
                     int64_t heads, int64_t head_dim, float* out) {
  const int64_t stride = heads * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  tbb::parallel_for(tbb::blocked_range2d<int64_t>(0, heads, 1, 0, n_q, 4), [&](const auto& r) {
    std::vector<float> score(n_kv);
    for (int64_t h = r.rows().begin(); h < r.rows().end(); ++h) {
      for (int64_t i = r.cols().begin(); i < r.cols().end(); ++i) {
        const int64_t pos = q_start + i;
        const float* qi = q + i * stride + h * head_dim;
        // Visible keys: the whole prefix, plus causal keys up to the query itself.
        const int64_t visible = std::min(n_kv, std::max(prefix_len, pos + 1));
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < visible; ++j) {
          score[j] = dot(qi, k + j * stride + h * head_dim, head_dim) * scale;
          mx = std::max(mx, score[j]);
        }
        float denom = 0.f;
        for (int64_t j = 0; j < visible; ++j) {
          score[j] = std::exp(score[j] - mx);
          denom += score[j];
        }
        float* o = out + i * stride + h * head_dim;
        std::fill(o, o + head_dim, 0.f);
        for (int64_t j = 0; j < visible; ++j) {
          const float p = score[j] / denom;
          const float* vj = v + j * stride + h * head_dim;
          for (int64_t d = 0; d < head_dim; ++d) o[d] += p * vj[d];
        }
        const float* gi = gate + i * stride + h * head_dim;
        for (int64_t d = 0; d < head_dim; ++d) o[d] *= 1.0f / (1.0f + std::exp(-gi[d]));
      }
    }
  });
}

}  // namespace hrm::cpu
