// The op table of the CUDA backend: every kernel of runtime/cuda/kernels.h against its CPU
// reference op (runtime/cpu/ops.h) or host twin (runtime/sampling.h) on fresh random inputs at
// several shapes. Each output is poisoned (0xFF bytes: NaN as fp32, bf16 and fp8, -1 as int32)
// before the launch, so an element the kernel forgets to write fails, and each case prints its
// error. Skips without a GPU. Not for: the model as a whole (CudaModel against the CPU Model is
// model_test.cpp's job).
//
// Tolerances are relative error norms ||gpu - cpu|| / ||cpu|| (attention: per query row, so one bad
// row cannot hide in the batch). Inputs the kernels read as bf16 or fp8 are rounded on the host
// first, so the CPU reference sees exactly the values the kernel sees and the error is the kernel's
// own:
//   kTolF32     fp32 output of fp32 math (rms_norm_f32): summation order and rsqrtf (2 ulp) only,
//               ~3e-7 expected.
//   kTolBf16    bf16 output of fp32 math: bf16 keeps 8 significant bits, so rounding is at most
//   2^-8
//               (3.9e-3) relative per element, ~1.7e-3 RMS; the bound itself cannot be exceeded by
//               rounding alone. Decode attention (fp32 math throughout) is this case too.
//   kTolPrefill prefill attention also rounds the probabilities P to bf16 for the tensor-core P*V:
//               ~2.8e-3 worst row expected. Its K/V are the host-rounded cache values, fp8
//               included, so an fp8 cache needs no looser bound here.
//   kTolFp8     values written into an fp8 e4m3 cache: 4 significant bits, rounding at most 2^-4
//               relative per element, ~2.7e-2 RMS over normal values.
#include "runtime/cpu/ops.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/cuda_model.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda_backend.h"
#include "runtime/sampling.h"
#include "tests/cuda/cuda_test_util.h"

namespace hrm::cuda {
namespace {

constexpr double kTolF32 = 2e-6;
constexpr double kTolBf16 = 4e-3;
constexpr double kTolPrefill = 1e-2;
constexpr double kTolFp8 = 6e-2;

constexpr uint16_t kPoisonBf16 = 0xFFFF;
constexpr float kEps = 1e-6f;          // ModelConfig::rms_norm_eps default

class CudaOps : public CudaTest {};

// ---- host twins of the kernels' conversions ----

// One KV-cache element as the kernels store it (device_math.cuh from_float), and back.
void store_kv(uint8_t* dst, KvDtype dtype, float x) {
  if (dtype == KvDtype::kFp8E4M3) {
    *dst = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
    return;
  }
  const uint16_t b = bits_of(__float2bfloat16(x));
  dst[0] = static_cast<uint8_t>(b & 0xFF);  // little-endian, as the device stores it
  dst[1] = static_cast<uint8_t>(b >> 8);
}
float load_kv(const uint8_t* src, KvDtype dtype) {
  if (dtype == KvDtype::kFp8E4M3) {
    __nv_fp8_e4m3 v;
    v.__x = *src;
    return static_cast<float>(v);
  }
  __nv_bfloat16_raw raw;
  raw.x = static_cast<uint16_t>(src[0] | (src[1] << 8));
  return __bfloat162float(bf16(raw));
}

// Element offset of (page, slot, k-or-v, token, column) in the paged pool (kernels.h).
int64_t kv_elem(const KvLayout& kv, int64_t page, int slot, int kv_index, int t, int col) {
  const int64_t attn_dim = int64_t{kv.heads} * kv.head_dim;
  return (((page * kv.slots + slot) * 2 + kv_index) * kv.page_tokens + t) * attn_dim + col;
}

// ---- norms, elementwise, gathers ----

TEST_F(CudaOps, RmsNormMatchesCpu) {
  std::mt19937 rng(1);
  for (int dim : {32, 1536}) {
    for (int rows : {1, 7, 300}) {
      const size_t n = static_cast<size_t>(rows) * dim;
      const std::vector<float> x = normal(rng, n, 3.f);
      std::vector<float> want(n);
      cpu::rms_norm(x.data(), rows, dim, kEps, want.data());

      const DeviceBuffer dx = upload(x);
      const DeviceBuffer dy = poisoned(n * sizeof(bf16));
      rms_norm(dx.as<float>(), rows, dim, kEps, dy.as<bf16>(), nullptr);
      expect_close(to_float(download<bf16>(dy, n)), want, kTolBf16,
                   cat("rms_norm dim=", dim, " rows=", rows));
    }
  }
}

TEST_F(CudaOps, AddRmsNormMatchesCpu) {
  std::mt19937 rng(2);
  for (int dim : {32, 1536}) {
    for (int rows : {1, 7, 300}) {
      const size_t n = static_cast<size_t>(rows) * dim;
      const std::vector<float> a = normal(rng, n, 2.f), b = normal(rng, n, 0.5f);
      std::vector<float> sum(n), want(n);
      for (size_t i = 0; i < n; ++i) sum[i] = a[i] + b[i];
      cpu::rms_norm(sum.data(), rows, dim, kEps, want.data());

      const DeviceBuffer da = upload(a), db = upload(b);
      const DeviceBuffer dsum = poisoned(n * sizeof(float)), dy = poisoned(n * sizeof(bf16));
      add_rms_norm(da.as<float>(), db.as<float>(), rows, dim, kEps, dsum.as<float>(), dy.as<bf16>(),
                   nullptr);
      const std::string what = cat("add_rms_norm dim=", dim, " rows=", rows);
      expect_close(to_float(download<bf16>(dy, n)), want, kTolBf16, what);
      // The sum is one fp32 addition per element on both sides: bit-identical.
      const std::vector<float> got_sum = download<float>(dsum, n);
      int64_t mismatched = 0;
      for (size_t i = 0; i < n; ++i) mismatched += got_sum[i] != sum[i];
      EXPECT_EQ(mismatched, 0) << what << ": elements of `sum` differ from a + b";
    }
  }
}

TEST_F(CudaOps, RmsNormF32MatchesCpuAlsoInPlace) {
  std::mt19937 rng(3);
  for (int dim : {32, 1536}) {
    for (int rows : {1, 7, 300}) {
      const size_t n = static_cast<size_t>(rows) * dim;
      const std::vector<float> x = normal(rng, n, 3.f);
      std::vector<float> want(n);
      cpu::rms_norm(x.data(), rows, dim, kEps, want.data());

      const DeviceBuffer dx = upload(x);
      const DeviceBuffer dy = poisoned(n * sizeof(float));
      rms_norm_f32(dx.as<float>(), rows, dim, kEps, dy.as<float>(), nullptr);
      expect_close(download<float>(dy, n), want, kTolF32,
                   cat("rms_norm_f32 dim=", dim, " rows=", rows));

      const DeviceBuffer dxy = upload(x);  // y == x
      rms_norm_f32(dxy.as<float>(), rows, dim, kEps, dxy.as<float>(), nullptr);
      expect_close(download<float>(dxy, n), want, kTolF32,
                   cat("rms_norm_f32 in place dim=", dim, " rows=", rows));
    }
  }
}

TEST_F(CudaOps, SiluMulMatchesCpu) {
  std::mt19937 rng(4);
  for (int inter : {32, 37, 1536}) {
    for (int rows : {1, 7, 300}) {
      const size_t n = static_cast<size_t>(rows) * inter;
      const std::vector<float> gu = bf16_normal(rng, 2 * n, 2.f);  // rows of [gate | up]
      std::vector<float> gate(n), up(n), want(n);
      for (int r = 0; r < rows; ++r) {
        for (int i = 0; i < inter; ++i) {
          gate[static_cast<size_t>(r) * inter + i] = gu[static_cast<size_t>(r) * 2 * inter + i];
          up[static_cast<size_t>(r) * inter + i] =
              gu[static_cast<size_t>(r) * 2 * inter + inter + i];
        }
      }
      cpu::silu_mul(gate.data(), up.data(), static_cast<int64_t>(n), want.data());

      const DeviceBuffer dgu = upload(to_bf16(gu));
      const DeviceBuffer dout = poisoned(n * sizeof(bf16));
      silu_mul(dgu.as<bf16>(), rows, inter, dout.as<bf16>(), nullptr);
      expect_close(to_float(download<bf16>(dout, n)), want, kTolBf16,
                   cat("silu_mul inter=", inter, " rows=", rows));
    }
  }
}

TEST_F(CudaOps, GatherRowsIsExact) {
  std::mt19937 rng(5);
  constexpr int kSourceRows = 50;
  for (int dim : {32, 1536}) {
    for (int n : {1, 7, 300}) {
      const std::vector<float> x = normal(rng, static_cast<size_t>(kSourceRows) * dim);
      std::uniform_int_distribution<int32_t> pick(0, kSourceRows - 1);
      std::vector<int32_t> rows(n);
      for (int32_t& r : rows) r = pick(rng);  // repeats and any order

      const DeviceBuffer dx = upload(x), drows = upload(rows);
      const size_t count = static_cast<size_t>(n) * dim;
      const DeviceBuffer dout = poisoned(count * sizeof(bf16));
      gather_rows(dx.as<float>(), drows.as<int32_t>(), n, dim, dout.as<bf16>(), nullptr);
      const std::vector<bf16> got = download<bf16>(dout, count);
      // One round-to-nearest-even fp32 -> bf16 conversion per element on both sides: bit-identical.
      int64_t mismatched = 0;
      for (int i = 0; i < n; ++i)
        for (int d = 0; d < dim; ++d)
          mismatched += bits_of(got[static_cast<size_t>(i) * dim + d]) !=
                        bits_of(__float2bfloat16(x[static_cast<size_t>(rows[i]) * dim + d]));
      std::printf("  gather_rows dim=%d n=%d: %lld of %zu elements differ\n", dim, n,
                  static_cast<long long>(mismatched), count);
      EXPECT_EQ(mismatched, 0) << "gather_rows dim=" << dim << " n=" << n;
    }
  }
}

TEST_F(CudaOps, EmbedScalesRowsAndCopiesZLInit) {
  std::mt19937 rng(6);
  constexpr int kVocab = 1000;
  for (int dim : {32, 1536}) {
    for (int rows : {1, 7, 300}) {
      const std::vector<float> table = normal(rng, static_cast<size_t>(kVocab) * dim);
      const std::vector<float> z_L_init = normal(rng, dim);
      std::uniform_int_distribution<int32_t> pick(0, kVocab - 1);
      std::vector<int32_t> tokens(rows);
      for (int32_t& t : tokens) t = pick(rng);
      const float scale = std::sqrt(static_cast<float>(dim));

      const DeviceBuffer dtok = upload(tokens), dtable = upload(table), dinit = upload(z_L_init);
      const size_t n = static_cast<size_t>(rows) * dim;
      const DeviceBuffer dzH = poisoned(n * sizeof(float)), dzL = poisoned(n * sizeof(float));
      embed(dtok.as<int32_t>(), rows, dtable.as<float>(), dinit.as<float>(), dim, scale,
            dzH.as<float>(), dzL.as<float>(), nullptr);
      const std::vector<float> zH = download<float>(dzH, n), zL = download<float>(dzL, n);
      // One fp32 multiplication (zH) or a copy (zL) per element: bit-identical.
      int64_t bad_h = 0, bad_l = 0;
      for (int r = 0; r < rows; ++r) {
        for (int d = 0; d < dim; ++d) {
          const size_t i = static_cast<size_t>(r) * dim + d;
          bad_h += zH[i] != table[static_cast<size_t>(tokens[r]) * dim + d] * scale;
          bad_l += zL[i] != z_L_init[d];
        }
      }
      EXPECT_EQ(bad_h, 0) << "embed zH dim=" << dim << " rows=" << rows;
      EXPECT_EQ(bad_l, 0) << "embed zL dim=" << dim << " rows=" << rows;
    }
  }
}

// ---- RoPE and the KV-cache write ----

TEST_F(CudaOps, RopeAndStoreKvMatchesCpu) {
  std::mt19937 rng(7);
  constexpr int kMaxPosition = 4000;
  constexpr int kSlots = 3, kSlot = 2;  // not slot 0, so the slot term of the offset matters
  constexpr int kSparePages = 2;
  struct Shape {
    int heads, head_dim;
  };
  for (const Shape sh : {Shape{12, 16}, Shape{7, 64}, Shape{12, 128}}) {
    for (const KvDtype dtype : {KvDtype::kBf16, KvDtype::kFp8E4M3}) {
      for (int pt : {16, 7}) {
        for (int rows : {1, 37, 300}) {
          const std::string what =
              cat("rope_and_store_kv heads=", sh.heads, " hd=", sh.head_dim, " pt=", pt,
                  dtype == KvDtype::kBf16 ? " bf16" : " fp8", " rows=", rows);
          const int A = sh.heads * sh.head_dim;
          const size_t W = 4 * static_cast<size_t>(A);  // row [gate | q | k | v]
          const std::vector<float> inv_freq = rope_inv_freq(sh.head_dim);
          std::uniform_int_distribution<int32_t> pos_dist(0, kMaxPosition);
          std::vector<int32_t> positions(rows);
          for (int32_t& p : positions) p = pos_dist(rng);
          const std::vector<int64_t> positions64(positions.begin(), positions.end());
          const std::vector<float> gqkv = bf16_normal(rng, rows * W);
          const std::vector<bf16> gqkv_bf16 = to_bf16(gqkv);

          // Every row gets its own (page, token) cell, drawn at random from a few more pages than
          // needed.
          const int pages = (rows + pt - 1) / pt + kSparePages;
          std::vector<int32_t> cells(static_cast<size_t>(pages) * pt);
          std::iota(cells.begin(), cells.end(), 0);
          std::shuffle(cells.begin(), cells.end(), rng);
          std::vector<int32_t> row_page(rows), row_off(rows);
          for (int r = 0; r < rows; ++r) {
            row_page[r] = cells[r] / pt;
            row_off[r] = cells[r] % pt;
          }

          KvLayout kv;
          kv.dtype = dtype;
          kv.slots = kSlots;
          kv.page_tokens = pt;
          kv.heads = sh.heads;
          kv.head_dim = sh.head_dim;
          const size_t esize = kv_dtype_bytes(dtype);
          const size_t pool_elems = static_cast<size_t>(pages) * kv.page_elems();
          const DeviceBuffer dpool = poisoned(pool_elems * esize);
          kv.pool = dpool.as<void>();
          const DeviceBuffer dgqkv = upload(gqkv_bf16), dpos = upload(positions),
                             dinv = upload(inv_freq);
          const DeviceBuffer dpage = upload(row_page), doff = upload(row_off);
          rope_and_store_kv(dgqkv.as<bf16>(), rows, dpos.as<int32_t>(), dinv.as<float>(),
                            dpage.as<int32_t>(), doff.as<int32_t>(), kv, kSlot, nullptr);
          const std::vector<bf16> got_gqkv = download<bf16>(dgqkv, rows * W);
          const std::vector<uint8_t> got_pool = download<uint8_t>(dpool, pool_elems * esize);

          std::vector<float> q(static_cast<size_t>(rows) * A), k(q.size()), v(q.size());
          for (int r = 0; r < rows; ++r) {
            for (int c = 0; c < A; ++c) {
              q[static_cast<size_t>(r) * A + c] = gqkv[r * W + A + c];
              k[static_cast<size_t>(r) * A + c] = gqkv[r * W + 2 * A + c];
              v[static_cast<size_t>(r) * A + c] = gqkv[r * W + 3 * A + c];
            }
          }
          cpu::rope_rotate_half(q.data(), rows, sh.heads, sh.head_dim, positions64, inv_freq);
          cpu::rope_rotate_half(k.data(), rows, sh.heads, sh.head_dim, positions64, inv_freq);

          // q is rotated in place; the gate, k and v columns of the rows stay as they were.
          std::vector<float> got_q(q.size());
          int64_t changed = 0;
          for (int r = 0; r < rows; ++r) {
            for (int c = 0; c < A; ++c) {
              got_q[static_cast<size_t>(r) * A + c] = __bfloat162float(got_gqkv[r * W + A + c]);
              for (int section : {0, 2, 3}) {
                const size_t i = r * W + static_cast<size_t>(section) * A + c;
                changed += bits_of(got_gqkv[i]) != bits_of(gqkv_bf16[i]);
              }
            }
          }
          EXPECT_EQ(changed, 0) << what << ": gate/k/v columns of gqkv were modified";
          expect_close(got_q, q, kTolBf16, what + " q");

          // The rotated k and the v sit at the documented offsets; nothing else in the pool was
          // written.
          std::vector<float> got_k(q.size()), got_v(q.size());
          std::vector<uint8_t> written(pool_elems, 0);
          for (int r = 0; r < rows; ++r) {
            for (int kv_index = 0; kv_index < 2; ++kv_index) {
              for (int c = 0; c < A; ++c) {
                const int64_t e = kv_elem(kv, row_page[r], kSlot, kv_index, row_off[r], c);
                (kv_index == 0 ? got_k : got_v)[static_cast<size_t>(r) * A + c] =
                    load_kv(&got_pool[e * esize], dtype);
                written[e] = 1;
              }
            }
          }
          int64_t stray = 0;
          for (size_t e = 0; e < pool_elems; ++e) {
            if (written[e]) continue;
            bool poisoned_still = true;
            for (size_t b = 0; b < esize; ++b) poisoned_still &= got_pool[e * esize + b] == kPoison;
            stray += !poisoned_still;
          }
          EXPECT_EQ(stray, 0)
              << what << ": pool elements written outside the rows' (page, slot, token) cells";
          expect_close(got_k, k, dtype == KvDtype::kBf16 ? kTolBf16 : kTolFp8,
                       what + " k in cache");
          if (dtype == KvDtype::kBf16) {
            int64_t mismatched = 0;  // bf16 -> fp32 -> bf16 is exact
            for (size_t i = 0; i < v.size(); ++i) mismatched += got_v[i] != v[i];
            EXPECT_EQ(mismatched, 0) << what << ": v in the cache differs from the v columns";
          } else {
            expect_close(got_v, v, kTolFp8, what + " v in cache");
          }
        }
      }
    }
  }
}

// ---- attention over the paged cache ----

// One sequence of an attention launch: n_kv = q_start + n_q tokens in the cache after the step.
struct SeqSpec {
  int n_q, q_start, prefix_len;
};

struct AttnShape {
  int heads, head_dim, page_tokens;
  KvDtype dtype;
};
std::string shape_name(const AttnShape& s) {
  return cat("heads=", s.heads, " hd=", s.head_dim, " pt=", s.page_tokens,
             s.dtype == KvDtype::kBf16 ? " bf16" : " fp8");
}

// How the cache's keys are drawn: random normal, or k[j] = j/4 in every column with q = 8 (16 for
// head_dim 16), so that q.k/sqrt(head_dim) grows by >= 16 per position and each query's softmax is
// one-hot (to 1e-7) on the last key it may see. j/4 is exact in bf16 for j < 256.
enum class Keys { kRandom, kIncreasing };
constexpr int kIncreasingMaxKeys = 256;
float increasing_q(int head_dim) { return head_dim <= 16 ? 16.f : 8.f; }

constexpr int kAttnSlots = 2, kAttnSlot = 1;  // slot 0 stays poisoned: reading it gives NaN
constexpr int kAttnSparePages = 2;            // never in a sequence's pages; stay poisoned

// One attention launch's inputs on the host, and the fp32 values the cache holds.
struct PagedBatch {
  KvLayout kv;  // pool is set on the device copy
  int rows = 0;
  std::vector<AttnSeq> seqs;
  std::vector<int32_t> tables;
  std::vector<bf16> gqkv;                // [rows, 4A]
  std::vector<uint8_t> pool;             // the cache's bytes
  std::vector<std::vector<float>> k, v;  // per sequence, [n_kv, A] as stored
  int attn_dim() const { return kv.heads * kv.head_dim; }
};

// Pages are handed out from a shuffled list (so every block table is a random permutation and page
// order matters), each table is followed by one entry naming a poisoned spare page (never needed),
// and the sequences' rows are laid out in shuffled order with gaps of rows that belong to none.
// The gqkv columns of k and v are NaN: attention must read keys and values from the cache.
PagedBatch make_batch(std::mt19937& rng, const AttnShape& sh, std::span<const SeqSpec> specs,
                      Keys keys) {
  PagedBatch b;
  b.kv.dtype = sh.dtype;
  b.kv.slots = kAttnSlots;
  b.kv.page_tokens = sh.page_tokens;
  b.kv.heads = sh.heads;
  b.kv.head_dim = sh.head_dim;
  const int A = b.attn_dim(), pt = sh.page_tokens;
  const size_t W = 4 * static_cast<size_t>(A), esize = kv_dtype_bytes(sh.dtype);
  const int n = static_cast<int>(specs.size());

  int total_pages = kAttnSparePages;
  for (const SeqSpec& s : specs) total_pages += (s.q_start + s.n_q + pt - 1) / pt;
  std::vector<int32_t> page_ids(total_pages);
  std::iota(page_ids.begin(), page_ids.end(), 0);
  std::shuffle(page_ids.begin(), page_ids.end(), rng);

  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int32_t> row0(n);
  std::uniform_int_distribution<int> gap(0, 2);
  int cur = 0;
  for (int s : order) {
    cur += gap(rng);
    row0[s] = cur;
    cur += specs[s].n_q;
  }
  b.rows = cur + 1;  // and one trailing row of no sequence

  std::normal_distribution<float> nd(0.f, 1.f);
  b.gqkv.resize(b.rows * W);
  for (int r = 0; r < b.rows; ++r) {
    for (size_t c = 0; c < W; ++c) {
      b.gqkv[r * W + c] = c < 2 * static_cast<size_t>(A) ? __float2bfloat16(nd(rng))
                                                         : bf16(__nv_bfloat16_raw{kPoisonBf16});
    }
  }

  b.pool.assign(static_cast<size_t>(total_pages) * b.kv.page_elems() * esize, kPoison);
  int next_page = 0;
  for (int s = 0; s < n; ++s) {
    const SeqSpec& sp = specs[s];
    const int n_kv = sp.q_start + sp.n_q;
    HRM_CHECK(keys == Keys::kRandom || n_kv <= kIncreasingMaxKeys,
              "test bug: too many increasing keys");
    const int n_pages = (n_kv + pt - 1) / pt;
    b.seqs.push_back(AttnSeq{row0[s], sp.n_q, sp.q_start, n_kv, sp.prefix_len,
                             static_cast<int32_t>(b.tables.size())});
    const std::vector<int32_t> table(page_ids.begin() + next_page,
                                     page_ids.begin() + next_page + n_pages);
    next_page += n_pages;
    b.tables.insert(b.tables.end(), table.begin(), table.end());
    b.tables.push_back(page_ids.back());  // a spare page: never assigned, all poison

    std::vector<float>& k = b.k.emplace_back(static_cast<size_t>(n_kv) * A);
    std::vector<float>& v = b.v.emplace_back(static_cast<size_t>(n_kv) * A);
    for (int j = 0; j < n_kv; ++j) {
      for (int c = 0; c < A; ++c) {
        const float kx = keys == Keys::kIncreasing ? static_cast<float>(j) / 4.f : nd(rng);
        const float vx = nd(rng);
        const int64_t ek = kv_elem(b.kv, table[j / pt], kAttnSlot, 0, j % pt, c);
        const int64_t ev = kv_elem(b.kv, table[j / pt], kAttnSlot, 1, j % pt, c);
        store_kv(&b.pool[ek * esize], sh.dtype, kx);
        store_kv(&b.pool[ev * esize], sh.dtype, vx);
        k[static_cast<size_t>(j) * A + c] = load_kv(&b.pool[ek * esize], sh.dtype);
        v[static_cast<size_t>(j) * A + c] = load_kv(&b.pool[ev * esize], sh.dtype);
      }
    }
    if (keys == Keys::kIncreasing) {
      for (int i = 0; i < sp.n_q; ++i)
        for (int c = 0; c < A; ++c)
          b.gqkv[(row0[s] + i) * W + A + c] = __float2bfloat16(increasing_q(sh.head_dim));
    }
  }
  return b;
}

// cpu::gated_attention on sequence s's rows of q and gate and the cache's values.
std::vector<float> cpu_attention(const PagedBatch& b, int s) {
  const AttnSeq& sq = b.seqs[s];
  const int A = b.attn_dim();
  const size_t W = 4 * static_cast<size_t>(A);
  std::vector<float> q(static_cast<size_t>(sq.n_q) * A), gate(q.size()), out(q.size());
  for (int i = 0; i < sq.n_q; ++i) {
    for (int c = 0; c < A; ++c) {
      gate[static_cast<size_t>(i) * A + c] = __bfloat162float(b.gqkv[(sq.row0 + i) * W + c]);
      q[static_cast<size_t>(i) * A + c] = __bfloat162float(b.gqkv[(sq.row0 + i) * W + A + c]);
    }
  }
  cpu::gated_attention(q.data(), gate.data(), sq.n_q, sq.q_start, b.k[s].data(), b.v[s].data(),
                       sq.n_kv, sq.prefix_len, b.kv.heads, b.kv.head_dim, out.data());
  return out;
}

// What the PrefixLM mask implies for Keys::kIncreasing: the query at absolute position p sees key j
// iff j < prefix_len or j <= p (and j < n_kv), so its output is sigmoid(gate) * v[last visible
// key].
std::vector<float> one_hot_attention(const PagedBatch& b, int s) {
  const AttnSeq& sq = b.seqs[s];
  const int A = b.attn_dim();
  const size_t W = 4 * static_cast<size_t>(A);
  std::vector<float> out(static_cast<size_t>(sq.n_q) * A);
  for (int i = 0; i < sq.n_q; ++i) {
    const int pos = sq.q_start + i;
    const int last = std::min(sq.n_kv, std::max(sq.prefix_len, pos + 1)) - 1;
    for (int c = 0; c < A; ++c) {
      const float g = __bfloat162float(b.gqkv[(sq.row0 + i) * W + c]);
      out[static_cast<size_t>(i) * A + c] =
          b.v[s][static_cast<size_t>(last) * A + c] / (1.f + std::exp(-g));
    }
  }
  return out;
}

struct DeviceBatch {
  DeviceBuffer gqkv, seqs, tables, pool;
  KvLayout kv;
};
DeviceBatch to_device(const PagedBatch& b) {
  DeviceBatch d{upload(b.gqkv), upload(b.seqs), upload(b.tables), upload(b.pool), b.kv};
  d.kv.pool = d.pool.as<void>();
  return d;
}

// Every query row of every sequence within `tol` (per row, over all its heads: a mask error on one
// row must not hide in a batch norm), and the rows of no sequence still poison.
void check_rows(const PagedBatch& b, std::span<const bf16> out,
                const std::vector<std::vector<float>>& want, double tol, const std::string& what) {
  const int A = b.attn_dim();
  std::vector<uint8_t> used(b.rows, 0);
  double worst = 0;
  int64_t bad_rows = 0, nonfinite = 0;
  std::string first_bad;
  std::vector<float> got(A);
  for (size_t s = 0; s < b.seqs.size(); ++s) {
    const AttnSeq& sq = b.seqs[s];
    for (int i = 0; i < sq.n_q; ++i) {
      const size_t r = static_cast<size_t>(sq.row0) + i;
      used[r] = 1;
      for (int c = 0; c < A; ++c) got[c] = __bfloat162float(out[r * A + c]);
      const Diff d =
          diff(got, std::span<const float>(want[s]).subspan(static_cast<size_t>(i) * A, A));
      nonfinite += d.nonfinite;
      worst = std::max(worst, d.rel);
      if (d.nonfinite == 0 && d.rel < tol) continue;
      if (bad_rows++ == 0) {
        first_bad = cat("seq ", s, " (n_q=", sq.n_q, " q_start=", sq.q_start, " n_kv=", sq.n_kv,
                        " prefix_len=", sq.prefix_len, ") query ", i, ": rel err ", d.rel, ", ",
                        d.nonfinite, " non-finite");
      }
    }
  }
  int64_t stray = 0;
  for (int r = 0; r < b.rows; ++r) {
    if (used[r]) continue;
    for (int c = 0; c < A; ++c)
      stray += bits_of(out[static_cast<size_t>(r) * A + c]) != kPoisonBf16;
  }
  std::printf("  %-64s worst row rel err %.2e (tol %.0e)\n", what.c_str(), worst, tol);
  EXPECT_EQ(bad_rows, 0) << what << ": first: " << first_bad;
  EXPECT_EQ(nonfinite, 0) << what << ": elements left unwritten (NaN poison) or not finite";
  EXPECT_EQ(stray, 0) << what << ": elements written in rows of no sequence";
}

std::vector<bf16> run_prefill(const PagedBatch& b, std::mt19937& rng) {
  std::vector<AttnTile> tiles;
  for (size_t s = 0; s < b.seqs.size(); ++s)
    for (int q0 = 0; q0 < b.seqs[s].n_q; q0 += kPrefillTileRows)
      tiles.push_back(AttnTile{static_cast<int32_t>(s), q0});
  std::shuffle(tiles.begin(), tiles.end(), rng);  // tiles are independent
  const DeviceBatch d = to_device(b);
  const DeviceBuffer dtiles = upload(tiles);
  const size_t n = static_cast<size_t>(b.rows) * b.attn_dim();
  const DeviceBuffer out = poisoned(n * sizeof(bf16));
  prefill_attention(d.gqkv.as<bf16>(), d.seqs.as<AttnSeq>(), dtiles.as<AttnTile>(),
                    static_cast<int>(tiles.size()), d.tables.as<int32_t>(), d.kv, kAttnSlot,
                    out.as<bf16>(), nullptr);
  return download<bf16>(out, n);
}

std::vector<bf16> run_decode(const PagedBatch& b, int splits) {
  const DeviceBatch d = to_device(b);
  const int num_seqs = static_cast<int>(b.seqs.size());
  const size_t n = static_cast<size_t>(b.rows) * b.attn_dim();
  const DeviceBuffer out = poisoned(n * sizeof(bf16));
  // Unused with one split: passing none checks that too.
  const DeviceBuffer partial = splits > 1 ? poisoned(static_cast<size_t>(num_seqs) * b.kv.heads *
                                                     splits * (b.kv.head_dim + 2) * sizeof(float))
                                          : DeviceBuffer();
  decode_attention(d.gqkv.as<bf16>(), d.seqs.as<AttnSeq>(), num_seqs, d.tables.as<int32_t>(), d.kv,
                   kAttnSlot, splits, partial.as<float>(), out.as<bf16>(), nullptr);
  return download<bf16>(out, n);
}

std::vector<AttnShape> attention_shapes() {
  struct HeadShape {
    int heads, head_dim;
  };
  std::vector<AttnShape> shapes;
  for (const HeadShape hs : {HeadShape{12, 16}, HeadShape{5, 64}, HeadShape{2, 128}})
    for (int pt : {16, 7})
      for (const KvDtype dtype : {KvDtype::kBf16, KvDtype::kFp8E4M3})
        shapes.push_back(AttnShape{hs.heads, hs.head_dim, pt, dtype});
  return shapes;
}

// Prefill steps: whole prompts (prefix = prompt; 64 and 65 straddle the tile size), a causal-only
// sequence, response tokens appended after a prefix (q_start > 0, prefix_len < q_start), a step
// whose new tokens are partly prefix, a chunked prompt continuing (prefix = n_kv), a single new
// token.
const std::vector<SeqSpec>& prefill_specs() {
  static const std::vector<SeqSpec> specs = {
      {1, 0, 1},    {5, 0, 5},      {64, 0, 64},  {65, 0, 65},  {200, 0, 200}, {37, 0, 0},
      {30, 50, 40}, {70, 130, 100}, {50, 20, 45}, {33, 64, 97}, {1, 99, 50},   {130, 3, 2},
  };
  return specs;
}

// Decode steps: one new token at the end of n_kv cached ones; prefix_len anywhere (the last query
// sees every key either way).
std::vector<SeqSpec> decode_specs(std::mt19937& rng, std::span<const int> n_kvs) {
  std::vector<SeqSpec> specs;
  for (int n_kv : n_kvs) {
    std::uniform_int_distribution<int> prefix(0, n_kv);
    specs.push_back(SeqSpec{1, n_kv - 1, prefix(rng)});
  }
  return specs;
}

TEST_F(CudaOps, PrefillAttentionMatchesCpu) {
  std::mt19937 rng(8);
  for (const AttnShape& sh : attention_shapes()) {
    const PagedBatch b = make_batch(rng, sh, prefill_specs(), Keys::kRandom);
    std::vector<std::vector<float>> want;
    for (size_t s = 0; s < b.seqs.size(); ++s)
      want.push_back(cpu_attention(b, static_cast<int>(s)));
    check_rows(b, run_prefill(b, rng), want, kTolPrefill, "prefill_attention " + shape_name(sh));
  }
}

TEST_F(CudaOps, DecodeAttentionMatchesCpu) {
  std::mt19937 rng(9);
  const std::vector<int> n_kvs = {1, 2, 7, 15, 16, 17, 63, 64, 65, 100, 257, 600};
  for (const AttnShape& sh : attention_shapes()) {
    const PagedBatch b = make_batch(rng, sh, decode_specs(rng, n_kvs), Keys::kRandom);
    std::vector<std::vector<float>> want;
    for (size_t s = 0; s < b.seqs.size(); ++s)
      want.push_back(cpu_attention(b, static_cast<int>(s)));
    for (int splits : {1, 3, 16})
      check_rows(b, run_decode(b, splits), want, kTolBf16,
                 cat("decode_attention ", shape_name(sh), " splits=", splits));
  }
}

// The mask itself, with outputs one-hot on the last visible key: an off-by-one at the prefix or
// causal boundary, or a key tile skipped, changes a row completely instead of by 1/n_kv.
TEST_F(CudaOps, AttentionMaskIsPrefixLm) {
  std::mt19937 rng(10);
  const std::vector<int> n_kvs = {1, 2, 17, 64, 65, 200, 256};
  for (int head_dim : {16, 64, 128}) {
    for (int pt : {16, 7}) {
      const AttnShape sh{3, head_dim, pt, KvDtype::kBf16};  // k = j/4 is not exact in fp8
      const PagedBatch pb = make_batch(rng, sh, prefill_specs(), Keys::kIncreasing);
      std::vector<std::vector<float>> want;
      for (size_t s = 0; s < pb.seqs.size(); ++s) {
        want.push_back(one_hot_attention(pb, static_cast<int>(s)));
        // The CPU reference has the same semantics (its other keys weigh e^-16 at most).
        expect_close(cpu_attention(pb, static_cast<int>(s)), want.back(), 1e-5,
                     cat("cpu::gated_attention one-hot ", shape_name(sh), " seq ", s));
      }
      check_rows(pb, run_prefill(pb, rng), want, kTolBf16,
                 "prefill_attention one-hot " + shape_name(sh));

      const PagedBatch db = make_batch(rng, sh, decode_specs(rng, n_kvs), Keys::kIncreasing);
      want.clear();
      for (size_t s = 0; s < db.seqs.size(); ++s)
        want.push_back(one_hot_attention(db, static_cast<int>(s)));
      for (int splits : {1, 3, 16})
        check_rows(db, run_decode(db, splits), want, kTolBf16,
                   cat("decode_attention one-hot ", shape_name(sh), " splits=", splits));
    }
  }
}

TEST_F(CudaOps, AttentionRejectsUnsupportedHeadDim) {
  constexpr int kUnsupported = 48;
  EXPECT_FALSE(attention_supports_head_dim(kUnsupported));
  EXPECT_TRUE(attention_supports_head_dim(64));
  KvLayout kv;
  kv.slots = 1;
  kv.page_tokens = 16;
  kv.heads = 2;
  kv.head_dim = kUnsupported;
  // The dispatch throws before touching any pointer.
  try {
    prefill_attention(nullptr, nullptr, nullptr, 1, nullptr, kv, 0, nullptr, nullptr);
    ADD_FAILURE() << "prefill_attention accepted head_dim " << kUnsupported;
  } catch (const hrm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("48"), std::string::npos) << e.what();
  }
  EXPECT_THROW(decode_attention(nullptr, nullptr, 1, nullptr, kv, 0, 1, nullptr, nullptr, nullptr),
               hrm::Error);
}

// ---- sampling ----

// Whether the host's cumulative distribution (in double) puts u within `tol` of token `got`'s
// interval [C(got-1), C(got)], or `got` is the mode and u is within `tol` of 1 (the kernel's
// fallback when fp32 rounding leaves the draw unreached): the GPU's fp32 scan may then differ from
// the host's choice.
bool draw_near_token(std::span<const float> row, float temperature, float u, int32_t got,
                     double tol) {
  if (got < 0 || static_cast<size_t>(got) >= row.size()) return false;
  const TokenId mode = argmax(row);
  if (got == mode && u >= 1.0 - tol) return true;
  const double mx = row[mode], inv_t = 1.0 / temperature;
  double total = 0, before = 0;
  for (size_t i = 0; i < row.size(); ++i) {
    const double p = std::exp((row[i] - mx) * inv_t);
    total += p;
    if (i < static_cast<size_t>(got)) before += p;
  }
  const double after = before + std::exp((row[got] - mx) * inv_t);
  return u >= before / total - tol && u <= after / total + tol;
}

TEST_F(CudaOps, SampleRowsMatchesHostSampling) {
  std::mt19937 rng(11);
  constexpr double kCdfTol = 1e-4;
  const float kTemperatures[] = {0.3f, 0.7f, 1.0f, 1.6f};
  for (int vocab : {256, 65536}) {
    const int n = vocab == 256 ? 64 : 24;
    const size_t V = static_cast<size_t>(vocab);
    std::vector<float> logits = normal(rng, n * V, 2.f);
    std::vector<float> temperature(n), u(n);
    std::uniform_int_distribution<int> pick(0, vocab - 1);
    for (int r = 0; r < n; ++r) {
      float* row = &logits[r * V];
      u[r] = unit_float(rng);
      switch (r % 4) {
        case 0: {  // greedy with a tie for the maximum: the first index wins
          temperature[r] = 0.f;
          int i = pick(rng), j = pick(rng);
          while (j == i) j = pick(rng);
          const float top = *std::max_element(row, row + vocab) + 1.f;
          row[i] = row[j] = top;
          break;
        }
        case 1:
          temperature[r] = 1e-6f;
          break;  // below kGreedyBelow: greedy
        default:
          temperature[r] = kTemperatures[(r / 4) % 4];
          break;
      }
    }
    std::fill(&logits[1 * V], &logits[2 * V], 0.75f);  // greedy, every logit equal: token 0
    temperature[2] = 1.f;                              // u = 0: the first token
    u[2] = 0.f;
    temperature[3] =
        1.f;  // u just below 1: the very end of the distribution (or the kernel's fallback)
    u[3] = 1.f - 0x1p-24f;

    const DeviceBuffer dlogits = upload(logits), dtemp = upload(temperature), du = upload(u);
    const DeviceBuffer dout = poisoned(n * sizeof(int32_t));
    sample_rows(dlogits.as<float>(), n, vocab, dtemp.as<float>(), du.as<float>(),
                dout.as<int32_t>(), nullptr);
    const std::vector<int32_t> got = download<int32_t>(dout, n);

    int exact = 0, near = 0;
    for (int r = 0; r < n; ++r) {
      const std::span<const float> row(&logits[r * V], V);
      if (temperature[r] < kGreedyBelow) {
        EXPECT_EQ(got[r], argmax(row)) << "vocab " << vocab << " greedy row " << r;
        continue;
      }
      const TokenId want = sample_inverse_cdf(row, temperature[r], u[r]);
      if (got[r] == want) {
        ++exact;
        continue;
      }
      ++near;
      EXPECT_TRUE(draw_near_token(row, temperature[r], u[r], got[r], kCdfTol))
          << "vocab " << vocab << " row " << r << " T=" << temperature[r] << " u=" << u[r]
          << ": GPU token " << got[r] << ", host token " << want;
    }
    std::printf(
        "  sample_rows vocab=%d: %d temperature rows equal the host's, %d differ at a boundary\n",
        vocab, exact, near);
  }
}

}  // namespace
}  // namespace hrm::cuda
