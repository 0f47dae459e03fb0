// HRM-Text forward pass on one GPU (see cuda_model.h).
#include "runtime/cuda/cuda_model.h"

#include <cuda_bf16.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "runtime/cuda/cuda_check.h"

namespace hrm::cuda {

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t err = cudaMalloc(&ptr_, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free allocation error
    throw Error(cat("CUDA backend: cannot allocate ", bytes, " bytes of GPU memory (", cudaGetErrorString(err), ")"));
  }
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_, bytes_ = o.bytes_;
    o.ptr_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

PinnedBuffer::PinnedBuffer(size_t bytes) { HRM_CUDA_CHECK(cudaMallocHost(&ptr_, bytes)); }
PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = o.ptr_;
    o.ptr_ = nullptr;
  }
  return *this;
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

void copy_to_device_bf16(std::initializer_list<const std::vector<float>*> parts, bf16* dst) {
  size_t n = 0;
  for (const auto* p : parts) n += p->size();
  std::vector<bf16> host(n);
  size_t off = 0;
  for (const auto* p : parts) {
    const float* src = p->data();
    tbb::parallel_for(tbb::blocked_range<size_t>(0, p->size(), 1 << 16), [&](const auto& r) {
      for (size_t i = r.begin(); i < r.end(); ++i) host[off + i] = __float2bfloat16(src[i]);
    });
    off += p->size();
  }
  HRM_CUDA_CHECK(cudaMemcpy(dst, host.data(), n * sizeof(bf16), cudaMemcpyHostToDevice));
}

namespace {

constexpr int kMaxSplits = 16;

DeviceBuffer upload_bf16(std::initializer_list<const std::vector<float>*> parts, int64_t& total_bytes) {
  size_t n = 0;
  for (const auto* p : parts) n += p->size();
  DeviceBuffer d(n * sizeof(bf16));
  copy_to_device_bf16(parts, d.as<bf16>());
  total_bytes += static_cast<int64_t>(n * sizeof(bf16));
  return d;
}

DeviceBuffer upload_f32(const std::vector<float>& v, int64_t& total_bytes) {
  DeviceBuffer d(v.size() * sizeof(float));
  HRM_CUDA_CHECK(cudaMemcpy(d.as<void>(), v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  total_bytes += static_cast<int64_t>(v.size() * sizeof(float));
  return d;
}

int next_pow2(int n) {
  int b = 1;
  while (b < n) b *= 2;
  return b;
}

}  // namespace

CudaModel::CudaModel(const ModelConfig& cfg, const ModelWeights& w, Options options)
    : cfg_(cfg), opt_(options), D_(cfg.hidden_size), A_(cfg.attn_dim()), I_(cfg.intermediate_size),
      V_(cfg.vocab_size) {
  if (!attention_supports_head_dim(static_cast<int>(cfg.head_dim)))
    throw Error(cat("CUDA backend: head_dim ", cfg.head_dim, " is not supported (16, 32, 64, 128 or 256)"));
  HRM_CHECK(opt_.page_tokens >= 1, "CUDA backend: page_tokens must be >= 1, got ", opt_.page_tokens);
  HRM_CHECK(opt_.max_seqs >= 1, "CUDA backend: max_seqs must be >= 1, got ", opt_.max_seqs);
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0)
    throw Error(cat("CUDA backend: no CUDA device (", err != cudaSuccess ? cudaGetErrorString(err) : "none found",
                    ")"));
  if (opt_.device < 0 || opt_.device >= count)
    throw Error(cat("CUDA backend: device ", opt_.device, " requested, ", count, " present"));
  HRM_CUDA_CHECK(cudaSetDevice(opt_.device));
  cudaDeviceProp prop{};
  HRM_CUDA_CHECK(cudaGetDeviceProperties(&prop, opt_.device));
  device_name_ = prop.name;
  sm_count_ = prop.multiProcessorCount;
  HRM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  HRM_CUBLAS_CHECK(cublasCreate(&cublas_));
  HRM_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  // A fixed workspace keeps cuBLAS from allocating while a graph is being captured.
  cublas_workspace_ = DeviceBuffer(size_t{32} << 20);
  HRM_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_.as<void>(), cublas_workspace_.bytes()));

  // Weights: fused projections as in the checkpoint's gqkv_proj / gate_up_proj row order.
  embed_ = upload_f32(w.embed, weight_bytes_);
  lm_head_ = upload_bf16({&w.lm_head}, weight_bytes_);
  z_L_init_ = upload_f32(w.z_L_init, weight_bytes_);
  std::vector<float> inv_freq(cfg.head_dim / 2);
  const float theta = static_cast<float>(cfg.rope_theta);
  for (size_t i = 0; i < inv_freq.size(); ++i)  // as Model: 1 / theta^(2i/d) in fp32
    inv_freq[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(cfg.head_dim));
  inv_freq_ = upload_f32(inv_freq, weight_bytes_);
  auto upload_block = [&](const BlockWeights& b) {
    Block d;
    d.gqkv = upload_bf16({&b.gate, &b.q, &b.k, &b.v}, weight_bytes_);
    d.o = upload_bf16({&b.o}, weight_bytes_);
    d.gu = upload_bf16({&b.mlp_gate, &b.up}, weight_bytes_);
    d.down = upload_bf16({&b.down}, weight_bytes_);
    return d;
  };
  for (const auto& b : w.L) L_.push_back(upload_block(b));
  for (const auto& b : w.H) H_.push_back(upload_block(b));

  // Activations.
  max_tokens_ = opt_.max_step_tokens > 0 ? opt_.max_step_tokens : std::max<int64_t>(8192, cfg.max_position_embeddings);
  max_tokens_ = std::max<int64_t>(max_tokens_, opt_.max_seqs);
  const int64_t T = max_tokens_;
  x_ = DeviceBuffer(T * D_ * sizeof(float));
  zH_ = DeviceBuffer(T * D_ * sizeof(float));
  zL_ = DeviceBuffer(T * D_ * sizeof(float));
  normed_ = DeviceBuffer(T * D_ * sizeof(bf16));
  gqkv_ = DeviceBuffer(T * 4 * A_ * sizeof(bf16));
  attn_ = DeviceBuffer(T * A_ * sizeof(bf16));
  gu_ = DeviceBuffer(T * 2 * I_ * sizeof(bf16));
  mid_ = DeviceBuffer(T * I_ * sizeof(bf16));
  partial_ = DeviceBuffer(size_t{1} * opt_.max_seqs * cfg.num_attention_heads * kMaxSplits * (cfg.head_dim + 2) *
                          sizeof(float));
  activation_bytes_ = static_cast<int64_t>(x_.bytes() * 3 + normed_.bytes() + gqkv_.bytes() + attn_.bytes() +
                                           gu_.bytes() + mid_.bytes() + partial_.bytes());
  ensure_logits(opt_.max_seqs);

  // Step metadata at fixed offsets (captured graphs read it in place).
  const int64_t max_pages_per_seq = (cfg.max_position_embeddings + opt_.page_tokens - 1) / opt_.page_tokens;
  meta_ = StepLayout::make(T, opt_.max_seqs, max_pages_per_seq);
  meta_dev_ = DeviceBuffer(meta_.total * sizeof(int32_t));
  meta_host_ = PinnedBuffer(meta_.total * sizeof(int32_t));

  // The paged KV cache takes what is left (or the budget asked for). Page 0 is scratch for padding rows.
  kv_.dtype = opt_.kv_dtype;
  kv_.slots = static_cast<int32_t>(cfg.kv_slots());
  kv_.page_tokens = opt_.page_tokens;
  kv_.heads = static_cast<int32_t>(cfg.num_attention_heads);
  kv_.head_dim = static_cast<int32_t>(cfg.head_dim);
  page_bytes_ = kv_.page_elems() * kv_dtype_bytes(opt_.kv_dtype);
  size_t free_b = 0, total_b = 0;
  HRM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  int64_t budget = opt_.kv_budget_bytes;
  if (budget <= 0) {
    // Leave room for cuBLAS, graphs and the CUDA context's growth: 1 GiB plus 5% of what is free.
    budget = static_cast<int64_t>(free_b) - (int64_t{1} << 30) - static_cast<int64_t>(free_b / 20);
  }
  const int64_t pages = budget / page_bytes_;  // plus the scratch page 0
  if (pages < 1)
    throw Error(cat("CUDA backend: a KV-cache budget of ", budget, " bytes holds no page of ", page_bytes_,
                    " bytes (", opt_.page_tokens, " tokens x ", cfg.kv_slots(), " slots); ", free_b,
                    " bytes of GPU memory are free"));
  pool_ = DeviceBuffer(static_cast<size_t>((pages + 1) * page_bytes_));
  kv_.pool = pool_.as<void>();
  cache_ = std::make_unique<PagedCache>(pages, opt_.page_tokens, cfg.max_position_embeddings, V_);
}

CudaModel::~CudaModel() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
  for (auto& [b, exec] : graphs_) cudaGraphExecDestroy(exec);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaModel::ensure_logits(int rows) {
  if (rows <= logits_rows_) return;
  // Captured graphs hold the old buffers' addresses: drop them, they are captured again on use.
  for (auto& [bucket, exec] : graphs_) cudaGraphExecDestroy(exec);
  graphs_.clear();
  lm_in_ = DeviceBuffer(static_cast<size_t>(rows) * D_ * sizeof(bf16));
  logits_ = DeviceBuffer(static_cast<size_t>(rows) * V_ * sizeof(float));
  logits_rows_ = rows;
}

void CudaModel::open(uint64_t seq) { cache_->open(seq); }
void CudaModel::close(uint64_t seq) { cache_->close(seq); }
int64_t CudaModel::length(uint64_t seq) const { return cache_->length(seq); }

int CudaModel::decode_splits(int seqs) const {
  if (seqs == 0) return 1;
  const int blocks = seqs * static_cast<int>(cfg_.num_attention_heads);
  return std::clamp((2 * sm_count_ + blocks - 1) / blocks, 1, kMaxSplits);
}

CudaModel::Plan CudaModel::prepare(std::span<const Input> inputs, bool all_logits, int pad_to) {
  Plan p;
  static_cast<StepPlan&>(p) = cache_->plan(inputs, all_logits, pad_to, meta_, meta_host_.as<int32_t>());
  p.splits = decode_splits(p.decode_seqs);
  return p;
}

void CudaModel::upload(const Plan& p, bool with_sampling) {
  int32_t* h = meta_host_.as<int32_t>();
  int32_t* d = meta_dev_.as<int32_t>();
  auto copy = [&](size_t off, size_t ints) {
    if (ints == 0) return;
    HRM_CUDA_CHECK(cudaMemcpyAsync(d + off, h + off, ints * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  };
  const size_t seq_ints = sizeof(AttnSeq) / sizeof(int32_t), tile_ints = sizeof(AttnTile) / sizeof(int32_t);
  copy(meta_.tokens, p.rows);
  copy(meta_.positions, p.rows);
  copy(meta_.row_page, p.rows);
  copy(meta_.row_off, p.rows);
  copy(meta_.out_rows, p.out_rows);
  copy(meta_.prefill_seqs, p.prefill_seqs * seq_ints);
  copy(meta_.decode_seqs, p.decode_seqs * seq_ints);
  copy(meta_.tiles, p.tiles * tile_ints);
  copy(meta_.tables, static_cast<size_t>(p.seqs) * static_cast<size_t>(meta_.max_pages_per_seq));
  if (with_sampling) {
    copy(meta_.temperature, p.out_rows);
    copy(meta_.u, p.out_rows);
  }
}

void CudaModel::gemm(const bf16* x, int rows, int in, const bf16* w, int out, void* y, bool y_f32, float beta) {
  if (rows == 0) return;
  const float alpha = 1.f;
  // Row-major y[rows, out] = x[rows, in] w[out, in]^T is column-major y^T = w^T(op T) x^T.
  HRM_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &alpha, w, CUDA_R_16BF, in, x,
                                CUDA_R_16BF, in, &beta, y, y_f32 ? CUDA_R_32F : CUDA_R_16BF, out, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
}

template <typename F>
void CudaModel::timed(const char* kernel, F&& launch) {
  if (!opt_.profile) {
    launch();
    return;
  }
  while (events_.size() < events_used_ + 2) {
    cudaEvent_t e = nullptr;
    HRM_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
  }
  HRM_CUDA_CHECK(cudaEventRecord(events_[events_used_], stream_));
  launch();
  HRM_CUDA_CHECK(cudaEventRecord(events_[events_used_ + 1], stream_));
  event_kernels_.resize(events_used_ / 2 + 1);
  event_kernels_[events_used_ / 2] = kernel;
  events_used_ += 2;
}

void CudaModel::collect_profile() {
  if (!opt_.profile) return;
  for (size_t i = 0; i + 1 < events_used_; i += 2) {
    float ms = 0;
    HRM_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]));
    ProfileRow& row = profile_[event_kernels_[i / 2]];
    row.kernel = event_kernels_[i / 2];
    row.ms += ms;
    ++row.launches;
  }
  events_used_ = 0;
}

std::vector<CudaModel::ProfileRow> CudaModel::profile() const {
  std::vector<ProfileRow> rows;
  for (const auto& [name, row] : profile_) rows.push_back(row);
  std::sort(rows.begin(), rows.end(), [](const ProfileRow& a, const ProfileRow& b) { return a.ms > b.ms; });
  return rows;
}

void CudaModel::forward(const Plan& p) {
  const int T = p.rows;
  const int D = static_cast<int>(D_), A = static_cast<int>(A_), I = static_cast<int>(I_), V = static_cast<int>(V_);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const int32_t* m = meta_dev_.as<int32_t>();
  const auto* pre = reinterpret_cast<const AttnSeq*>(m + meta_.prefill_seqs);
  const auto* dec = reinterpret_cast<const AttnSeq*>(m + meta_.decode_seqs);
  const auto* tiles = reinterpret_cast<const AttnTile*>(m + meta_.tiles);
  const int32_t* tables = m + meta_.tables;
  float* x = x_.as<float>();
  bf16* normed = normed_.as<bf16>();
  bf16* gqkv = gqkv_.as<bf16>();
  bf16* attn = attn_.as<bf16>();

  timed("embed", [&] {
    embed(m + meta_.tokens, T, embed_.as<float>(), z_L_init_.as<float>(), D,
          static_cast<float>(cfg_.embedding_scale), zH_.as<float>(), zL_.as<float>(), stream_);
  });

  // One stack invocation: x = target + other, the blocks, then target = exit-norm(x).
  auto run_stack = [&](const std::vector<Block>& blocks, float* target, const float* other, int slot_base) {
    timed("add_rms_norm", [&] { add_rms_norm(target, other, T, D, eps, x, normed, stream_); });
    for (size_t b = 0; b < blocks.size(); ++b) {
      const Block& blk = blocks[b];
      const int slot = slot_base + static_cast<int>(b);
      if (b > 0) timed("rms_norm", [&] { rms_norm(x, T, D, eps, normed, stream_); });
      timed("gemm gqkv", [&] { gemm(normed, T, D, blk.gqkv.as<bf16>(), 4 * A, gqkv, false, 0.f); });
      timed("rope_and_store_kv", [&] {
        rope_and_store_kv(gqkv, T, m + meta_.positions, inv_freq_.as<float>(), m + meta_.row_page, m + meta_.row_off,
                          kv_, slot, stream_);
      });
      if (p.tiles > 0)
        timed("prefill_attention", [&] { prefill_attention(gqkv, pre, tiles, p.tiles, tables, kv_, slot, attn, stream_); });
      if (p.decode_seqs > 0)
        timed("decode_attention", [&] {
          decode_attention(gqkv, dec, p.decode_seqs, tables, kv_, slot, p.splits, partial_.as<float>(), attn, stream_);
        });
      timed("gemm o (+residual)", [&] { gemm(attn, T, A, blk.o.as<bf16>(), D, x, true, 1.f); });
      timed("rms_norm", [&] { rms_norm(x, T, D, eps, normed, stream_); });
      timed("gemm gate_up", [&] { gemm(normed, T, D, blk.gu.as<bf16>(), 2 * I, gu_.as<bf16>(), false, 0.f); });
      timed("silu_mul", [&] { silu_mul(gu_.as<bf16>(), T, I, mid_.as<bf16>(), stream_); });
      timed("gemm down (+residual)", [&] { gemm(mid_.as<bf16>(), T, I, blk.down.as<bf16>(), D, x, true, 1.f); });
    }
    timed("rms_norm (stack exit)", [&] { rms_norm_f32(x, T, D, eps, target, stream_); });
  };

  const int blocks = static_cast<int>(cfg_.num_layers_per_stack);
  for (int h = 0; h < cfg_.H_cycles; ++h) {
    for (int l = 0; l < cfg_.L_cycles; ++l)
      run_stack(L_, zL_.as<float>(), zH_.as<float>(), (h * static_cast<int>(cfg_.L_cycles + 1) + l) * blocks);
    run_stack(H_, zH_.as<float>(), zL_.as<float>(),
              (h * static_cast<int>(cfg_.L_cycles + 1) + static_cast<int>(cfg_.L_cycles)) * blocks);
  }
  timed("gather_rows", [&] { gather_rows(zH_.as<float>(), m + meta_.out_rows, p.out_rows, D, lm_in_.as<bf16>(), stream_); });
  timed("gemm lm_head", [&] {
    gemm(lm_in_.as<bf16>(), p.out_rows, D, lm_head_.as<bf16>(), V, logits_.as<float>(), true, 0.f);
  });
}

void CudaModel::sample(const Plan& p) {
  int32_t* m = meta_dev_.as<int32_t>();
  timed("sample_rows", [&] {
    sample_rows(logits_.as<float>(), p.out_rows, static_cast<int>(V_),
                reinterpret_cast<const float*>(m + meta_.temperature), reinterpret_cast<const float*>(m + meta_.u),
                m + meta_.next, stream_);
  });
}

std::vector<std::vector<float>> CudaModel::step_logits(std::span<const Input> inputs, bool all_logits) {
  Plan p = prepare(inputs, all_logits, 0);
  ensure_logits(p.out_rows);
  upload(p, false);
  forward(p);
  std::vector<float> host(static_cast<size_t>(p.out_rows) * V_);
  HRM_CUDA_CHECK(cudaMemcpyAsync(host.data(), logits_.as<float>(), host.size() * sizeof(float),
                                 cudaMemcpyDeviceToHost, stream_));
  HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  collect_profile();
  cache_->commit(inputs);
  std::vector<std::vector<float>> out(inputs.size());
  size_t row = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const size_t rows = all_logits ? inputs[i].tokens.size() : 1;
    out[i].assign(host.begin() + static_cast<int64_t>(row * V_), host.begin() + static_cast<int64_t>((row + rows) * V_));
    row += rows;
  }
  return out;
}

void CudaModel::step_sample(std::span<const Input> inputs, std::span<const float> temperature, std::span<const float> u,
                            std::span<TokenId> next) {
  const size_t n = inputs.size();
  HRM_CHECK(temperature.size() == n && u.size() == n && next.size() == n,
            "CUDA backend: step_sample needs one temperature, draw and output per sequence");
  const bool decode_only = std::all_of(inputs.begin(), inputs.end(), [](const Input& in) { return in.tokens.size() == 1; });
  const bool graph = opt_.graphs && !opt_.profile && decode_only;
  const int bucket = graph ? std::min(next_pow2(static_cast<int>(n)), opt_.max_seqs) : 0;
  Plan p = prepare(inputs, false, bucket);
  float* temp_h = reinterpret_cast<float*>(meta_host_.as<int32_t>() + meta_.temperature);
  float* u_h = reinterpret_cast<float*>(meta_host_.as<int32_t>() + meta_.u);
  for (int i = 0; i < p.out_rows; ++i) {
    temp_h[i] = i < static_cast<int>(n) ? temperature[i] : 0.f;
    u_h[i] = i < static_cast<int>(n) ? u[i] : 0.f;
  }
  upload(p, true);
  if (graph) {
    auto it = graphs_.find(bucket);
    if (it == graphs_.end()) {
      cudaGraph_t g = nullptr;
      HRM_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      try {
        forward(p);
        sample(p);
      } catch (...) {
        cudaStreamEndCapture(stream_, &g);
        if (g) cudaGraphDestroy(g);
        throw;
      }
      HRM_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
      cudaGraphExec_t exec = nullptr;
      const cudaError_t err = cudaGraphInstantiate(&exec, g, 0);
      cudaGraphDestroy(g);
      HRM_CUDA_CHECK(err);
      it = graphs_.emplace(bucket, exec).first;
    }
    HRM_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
  } else {
    forward(p);
    sample(p);
  }
  int32_t* next_h = meta_host_.as<int32_t>() + meta_.next;
  HRM_CUDA_CHECK(cudaMemcpyAsync(next_h, meta_dev_.as<int32_t>() + meta_.next, n * sizeof(int32_t),
                                 cudaMemcpyDeviceToHost, stream_));
  HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  collect_profile();
  for (size_t i = 0; i < n; ++i) next[i] = next_h[i];
  cache_->commit(inputs);
}

}  // namespace hrm::cuda
