// The launchers of runtime/cuda/train_kernels.h on the host (see tests/emu/emu.h), so that the CUDA
// training backend's orchestration (runtime/cuda/cuda_train.cpp) runs against the CPU reference
// without a GPU.
//
// Each launcher is written from its header contract, not from the kernel: the formula of the CPU op
// it mirrors (runtime/cpu/ops.h, backward.h; the Adam-atan2 update of optimizer.h, called directly),
// bf16 rounding exactly where the header says an output is bf16, and the stated layouts (the
// attention's lse per (head, row) in log2 units, gate_backward's delta). Every pointer is
// range-checked against the live device allocations at launch; what depends on device data (row
// indices, tokens, tiles) is checked when the work runs. Arithmetic inside is fp32 or better, so the
// emulation is at least as close to the CPU as the kernels; the attention in particular keeps P and
// dS in fp32 where the kernels round them to bf16 for the tensor cores.
// Not for: testing the kernels themselves (*.cu); those are tested on a GPU only.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "runtime/cpu/backward.h"
#include "runtime/cuda/train_kernels.h"
#include "runtime/optimizer.h"
#include "tests/emu/emu.h"

namespace hrm::cuda {
namespace {

using emu::device;

float f32(bf16 x) { return __bfloat162float(x); }
bf16 b16(float x) { return __float2bfloat16(x); }
float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

constexpr double kLog2e = 1.4426950408889634;

// The sequence of `tile`, checked against the batch: tile and sequence lie inside rows [0, rows).
TrainSeq tile_seq(const TrainSeq* seqs, const TrainTile& tile, int rows, const char* launcher) {
  const TrainSeq& s = *device(seqs + tile.seq, 1, launcher);
  HRM_CHECK(s.start >= 0 && s.len >= 0 && int64_t{s.start} + s.len <= rows && s.prefix >= 0,
            launcher, ": sequence ", tile.seq, " (start ", s.start, ", len ", s.len, ") outside ", rows, " rows");
  HRM_CHECK(tile.row0 >= 0 && tile.row0 < s.len, launcher, ": tile row ", tile.row0, " outside sequence ", tile.seq,
            " of ", s.len, " rows");
  return s;
}

// Query i of a sequence sees key j iff j < prefix or j <= i (train_kernels.h).
bool visible(int i, int j, const TrainSeq& s) { return j < s.prefix || j <= i; }

void check_head_dim(int head_dim) {
  if (!train_attention_supports_head_dim(head_dim))
    throw Error(cat("CUDA training: head_dim ", head_dim, " is not supported (16, 32, 64 or 128)"));
}

double dot(const bf16* a, const bf16* b, int n) {
  double s = 0;
  for (int d = 0; d < n; ++d) s += double{f32(a[d])} * f32(b[d]);
  return s;
}

}  // namespace

void add(const float* a, const float* b, int64_t n, float* y, cudaStream_t stream) {
  if (n == 0) return;
  device(a, n, "add: a"), device(b, n, "add: b"), device(y, n, "add: y");
  emu::submit(stream, [=] {
    for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
  });
}

void add_into(float* y, const float* a, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  device(y, n, "add_into: y"), device(a, n, "add_into: a");
  emu::submit(stream, [=] {
    for (int64_t i = 0; i < n; ++i) y[i] += a[i];
  });
}

void to_bf16(const float* x, int64_t n, bf16* y, cudaStream_t stream) {
  if (n == 0) return;
  device(x, n, "to_bf16: x"), device(y, n, "to_bf16: y");
  emu::submit(stream, [=] {
    for (int64_t i = 0; i < n; ++i) y[i] = b16(x[i]);
  });
}

void rope_qk(bf16* gqkv, int rows, int heads, int head_dim, const int32_t* positions, const float* inv_freq,
             float sign, cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t A = int64_t{heads} * head_dim, half = head_dim / 2;
  device(gqkv, rows * 4 * A, "rope_qk: gqkv"), device(positions, rows, "rope_qk: positions");
  device(inv_freq, half, "rope_qk: inv_freq");
  emu::submit(stream, [=] {
    for (int64_t r = 0; r < rows; ++r) {
      const float pos = sign * static_cast<float>(positions[r]);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[i];  // fp32, as cpu::rope_rotate_half
        const float c = std::cos(angle), s = std::sin(angle);
        for (int part = 1; part <= 2; ++part)  // q, then k
          for (int64_t h = 0; h < heads; ++h) {
            bf16* x = gqkv + r * 4 * A + part * A + h * head_dim;
            const float x1 = f32(x[i]), x2 = f32(x[i + half]);
            x[i] = b16(x1 * c - x2 * s);
            x[i + half] = b16(x2 * c + x1 * s);
          }
      }
    }
  });
}

void gate_forward(const bf16* gqkv, const bf16* attn, int rows, int attn_dim, bf16* gated, cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t A = attn_dim;
  device(gqkv, rows * 4 * A, "gate_forward: gqkv"), device(attn, rows * A, "gate_forward: attn");
  device(gated, rows * A, "gate_forward: gated");
  emu::submit(stream, [=] {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < A; ++c) gated[r * A + c] = b16(f32(attn[r * A + c]) * sigmoid(f32(gqkv[r * 4 * A + c])));
  });
}

void gate_backward(const bf16* gqkv, const bf16* attn, const float* d, int rows, int heads, int head_dim,
                   bf16* dgqkv, bf16* dattn, float* delta, cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t A = int64_t{heads} * head_dim;
  device(gqkv, rows * 4 * A, "gate_backward: gqkv"), device(attn, rows * A, "gate_backward: attn");
  device(d, rows * A, "gate_backward: d"), device(dgqkv, rows * 4 * A, "gate_backward: dgqkv");
  device(dattn, rows * A, "gate_backward: dattn"), device(delta, int64_t{heads} * rows, "gate_backward: delta");
  emu::submit(stream, [=] {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < heads; ++h) {
        double dot = 0;
        for (int64_t c = h * head_dim; c < (h + 1) * head_dim; ++c) {
          const float s = sigmoid(f32(gqkv[r * 4 * A + c])), a = f32(attn[r * A + c]), g = d[r * A + c];
          dgqkv[r * 4 * A + c] = b16(g * a * s * (1.f - s));
          dattn[r * A + c] = b16(g * s);
          dot += double{f32(dattn[r * A + c])} * a;  // both as stored
        }
        delta[h * rows + r] = static_cast<float>(dot);
      }
  });
}

void silu_mul_backward(const bf16* gu, const float* dy, int rows, int inter, bf16* dgu, cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t I = inter, n = rows * I;
  device(gu, 2 * n, "silu_mul_backward: gu"), device(dy, n, "silu_mul_backward: dy");
  device(dgu, 2 * n, "silu_mul_backward: dgu");
  emu::submit(stream, [=] {
    std::vector<float> g(n), u(n), dg(n), du(n);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < I; ++c) g[r * I + c] = f32(gu[r * 2 * I + c]), u[r * I + c] = f32(gu[r * 2 * I + I + c]);
    cpu::silu_mul_backward(g.data(), u.data(), dy, n, dg.data(), du.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < I; ++c) dgu[r * 2 * I + c] = b16(dg[r * I + c]), dgu[r * 2 * I + I + c] = b16(du[r * I + c]);
  });
}

void rms_norm_backward(const float* x, const float* dy, int rows, int dim, float eps, float* dx, bool accumulate,
                       cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t n = int64_t{rows} * dim;
  device(x, n, "rms_norm_backward: x"), device(dy, n, "rms_norm_backward: dy"), device(dx, n, "rms_norm_backward: dx");
  emu::submit(stream, [=] { cpu::rms_norm_backward(x, dy, rows, dim, eps, dx, accumulate); });
}

void cross_entropy(const float* logits, const int32_t* labels, int n, int vocab, float inv_n, float* loss,
                   int32_t* correct, bf16* dlogits, cudaStream_t stream) {
  if (n == 0) return;
  const int64_t V = vocab;
  device(logits, n * V, "cross_entropy: logits"), device(labels, n, "cross_entropy: labels");
  device(loss, n, "cross_entropy: loss"), device(correct, n, "cross_entropy: correct");
  device(dlogits, n * V, "cross_entropy: dlogits");
  emu::submit(stream, [=] {
    for (int64_t r = 0; r < n; ++r) {
      const float* z = logits + r * V;
      const int32_t label = labels[r];
      HRM_CHECK(label >= 0 && label < vocab, "cross_entropy: label ", label, " of row ", r, " outside [0, ", vocab, ")");
      const int64_t best = std::max_element(z, z + V) - z;  // the first argmax
      double sum = 0;
      for (int64_t i = 0; i < V; ++i) sum += std::exp(double{z[i]} - z[best]);
      const double lse = z[best] + std::log(sum);
      loss[r] = static_cast<float>(lse - z[label]);
      correct[r] = best == label;
      for (int64_t i = 0; i < V; ++i)
        dlogits[r * V + i] = b16(static_cast<float>(std::exp(z[i] - lse) * inv_n - (i == label ? inv_n : 0.0)));
    }
  });
}

void scatter_rows(const float* src, const int32_t* rows, int n, int dim, float* dst, cudaStream_t stream) {
  if (n == 0) return;
  device(src, int64_t{n} * dim, "scatter_rows: src"), device(rows, n, "scatter_rows: rows");
  emu::submit(stream, [=] {
    for (int64_t i = 0; i < n; ++i) {
      float* d = device(dst + int64_t{rows[i]} * dim, dim, "scatter_rows: dst row");
      std::copy_n(src + i * dim, dim, d);
    }
  });
}

void embed_backward(const float* dz, const int32_t* token, const int32_t* begin, const int32_t* order, int n_tokens,
                    int dim, float scale, float* grad, cudaStream_t stream) {
  if (n_tokens == 0) return;
  device(token, n_tokens, "embed_backward: token"), device(begin, n_tokens + 1, "embed_backward: begin");
  emu::submit(stream, [=] {
    std::vector<int32_t> seen(token, token + n_tokens);
    std::sort(seen.begin(), seen.end());
    HRM_CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end(), "embed_backward: the tokens are not distinct");
    HRM_CHECK(begin[0] >= 0, "embed_backward: begin[0] = ", begin[0]);
    device(order + begin[0], begin[n_tokens] - begin[0], "embed_backward: order");
    std::vector<float> acc(dim);
    for (int t = 0; t < n_tokens; ++t) {
      HRM_CHECK(begin[t] <= begin[t + 1], "embed_backward: begin is not sorted at ", t);
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int32_t i = begin[t]; i < begin[t + 1]; ++i) {
        const float* row = device(dz + int64_t{order[i]} * dim, dim, "embed_backward: dz row");
        for (int c = 0; c < dim; ++c) acc[c] += row[c];
      }
      float* g = device(grad + int64_t{token[t]} * dim, dim, "embed_backward: grad row");
      for (int c = 0; c < dim; ++c) g[c] += scale * acc[c];
    }
  });
}

void adam_atan2(float* p, const float* g, float* m, float* v, float* ema, int64_t n, AdamScalars s,
                cudaStream_t stream) {
  if (n == 0) return;
  device(p, n, "adam_atan2: p"), device(g, n, "adam_atan2: g"), device(m, n, "adam_atan2: m");
  device(v, n, "adam_atan2: v");
  if (ema) device(ema, n, "adam_atan2: ema");
  emu::submit(stream, [=] {
    AdamStep step;
    step.decay = s.decay, step.b1c = s.b1c, step.b2 = s.b2, step.b2c = s.b2c, step.ema_w = s.ema_w;
    step.ema = ema != nullptr, step.active = {1}, step.step_size = {s.step_size}, step.inv_sqrt_bc2 = {s.inv_sqrt_bc2};
    adam_atan2_update(p, g, m, v, ema, static_cast<size_t>(n), step, 0);
  });
}

bool train_attention_supports_head_dim(int head_dim) {
  return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128;
}

void train_attention_forward(const bf16* gqkv, int rows, const TrainSeq* seqs, const TrainTile* tiles, int num_tiles,
                             int heads, int head_dim, bf16* out, float* lse, cudaStream_t stream) {
  if (num_tiles == 0) return;
  check_head_dim(head_dim);
  const int64_t A = int64_t{heads} * head_dim;
  device(gqkv, rows * 4 * A, "train_attention_forward: gqkv"), device(tiles, num_tiles, "train_attention_forward: tiles");
  device(out, rows * A, "train_attention_forward: out"), device(lse, int64_t{heads} * rows, "train_attention_forward: lse");
  emu::submit(stream, [=] {
    const double scale_log2 = kLog2e / std::sqrt(static_cast<double>(head_dim));
    std::vector<double> s2, o(head_dim);
    for (int t = 0; t < num_tiles; ++t) {
      const TrainSeq s = tile_seq(seqs, tiles[t], rows, "train_attention_forward: seqs");
      const auto row = [&](int i) { return gqkv + (int64_t{s.start} + i) * 4 * A; };
      for (int i = tiles[t].row0; i < std::min(tiles[t].row0 + kTrainTileRows, s.len); ++i)
        for (int64_t h = 0; h < heads; ++h) {
          const int keys = std::min(s.len, std::max(s.prefix, i + 1));
          s2.assign(keys, 0.0);
          double mx = -INFINITY;
          for (int j = 0; j < keys; ++j) {
            s2[j] = dot(row(i) + A + h * head_dim, row(j) + 2 * A + h * head_dim, head_dim) * scale_log2;
            mx = std::max(mx, s2[j]);
          }
          double sum = 0;
          for (int j = 0; j < keys; ++j) sum += std::exp2(s2[j] - mx);
          const double l2 = mx + std::log2(sum);
          std::fill(o.begin(), o.end(), 0.0);
          for (int j = 0; j < keys; ++j) {
            const double p = std::exp2(s2[j] - l2);
            const bf16* v = row(j) + 3 * A + h * head_dim;
            for (int d = 0; d < head_dim; ++d) o[d] += p * f32(v[d]);
          }
          const int64_t r = int64_t{s.start} + i;
          for (int d = 0; d < head_dim; ++d) out[r * A + h * head_dim + d] = b16(static_cast<float>(o[d]));
          lse[h * rows + r] = static_cast<float>(l2);
        }
    }
  });
}

void train_attention_backward(const bf16* gqkv, const bf16* dout, const float* lse, const float* delta, int rows,
                              const TrainSeq* seqs, const TrainTile* tiles, int num_tiles, int heads, int head_dim,
                              bf16* dgqkv, cudaStream_t stream) {
  if (num_tiles == 0) return;
  check_head_dim(head_dim);
  const int64_t A = int64_t{heads} * head_dim;
  device(gqkv, rows * 4 * A, "train_attention_backward: gqkv"), device(dout, rows * A, "train_attention_backward: dout");
  device(lse, int64_t{heads} * rows, "train_attention_backward: lse");
  device(delta, int64_t{heads} * rows, "train_attention_backward: delta");
  device(tiles, num_tiles, "train_attention_backward: tiles");
  device(dgqkv, rows * 4 * A, "train_attention_backward: dgqkv");
  emu::submit(stream, [=] {
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim)), scale_log2 = kLog2e * scale;
    std::vector<double> dq(head_dim), dk(head_dim), dv(head_dim);
    for (int t = 0; t < num_tiles; ++t) {
      const TrainSeq s = tile_seq(seqs, tiles[t], rows, "train_attention_backward: seqs");
      const auto row = [&](int i) { return int64_t{s.start} + i; };
      // P and dS of (query i, key j) in head h, from the saved lse2 and delta of the query's row.
      const auto p_ds = [&](int i, int j, int64_t h, double* ds) {
        const bf16* q = gqkv + row(i) * 4 * A + A + h * head_dim;
        const bf16* k = gqkv + row(j) * 4 * A + 2 * A + h * head_dim;
        const bf16* v = gqkv + row(j) * 4 * A + 3 * A + h * head_dim;
        const double p = std::exp2(dot(q, k, head_dim) * scale_log2 - lse[h * rows + row(i)]);
        *ds = p * (dot(dout + row(i) * A + h * head_dim, v, head_dim) - delta[h * rows + row(i)]);
        return p;
      };
      const int end = std::min(tiles[t].row0 + kTrainTileRows, s.len);
      for (int64_t h = 0; h < heads; ++h) {
        // The tile's rows as keys: dK = scale dS^T Q, dV = P^T dO over the queries that see them.
        for (int j = tiles[t].row0; j < end; ++j) {
          std::fill(dk.begin(), dk.end(), 0.0), std::fill(dv.begin(), dv.end(), 0.0);
          for (int i = 0; i < s.len; ++i) {
            if (!visible(i, j, s)) continue;
            double ds;
            const double p = p_ds(i, j, h, &ds);
            const bf16* q = gqkv + row(i) * 4 * A + A + h * head_dim;
            const bf16* g = dout + row(i) * A + h * head_dim;
            for (int d = 0; d < head_dim; ++d) dk[d] += ds * f32(q[d]), dv[d] += p * f32(g[d]);
          }
          bf16* dst = dgqkv + row(j) * 4 * A + h * head_dim;
          for (int d = 0; d < head_dim; ++d)
            dst[2 * A + d] = b16(static_cast<float>(dk[d] * scale)), dst[3 * A + d] = b16(static_cast<float>(dv[d]));
        }
        // The tile's rows as queries: dQ = scale dS K over the keys they see.
        for (int i = tiles[t].row0; i < end; ++i) {
          std::fill(dq.begin(), dq.end(), 0.0);
          for (int j = 0; j < std::min(s.len, std::max(s.prefix, i + 1)); ++j) {
            double ds;
            p_ds(i, j, h, &ds);
            const bf16* k = gqkv + row(j) * 4 * A + 2 * A + h * head_dim;
            for (int d = 0; d < head_dim; ++d) dq[d] += ds * f32(k[d]);
          }
          bf16* dst = dgqkv + row(i) * 4 * A + A + h * head_dim;
          for (int d = 0; d < head_dim; ++d) dst[d] = b16(static_cast<float>(dq[d] * scale));
        }
      }
    }
  });
}

}  // namespace hrm::cuda
