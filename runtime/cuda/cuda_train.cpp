// The CUDA training backend: loss and gradients of a packed batch on one GPU (train.h's TrainBackend).
//
// The same computation as cpu_forward_backward (runtime/train.cpp), step for step — the invocation
// order, truncated backprop, which invocations keep activations, the loss rows, the reached flags —
// in the reference's mixed precision: bf16 weights and GEMM inputs with fp32 accumulation, fp32
// residual stream and residual gradients, fp32 weight gradients. The fp32 master weights and the
// optimizer stay with the trainer (host); this backend keeps bf16 copies of the weights on the GPU,
// refreshed when the trainer says they changed, and adds its fp32 gradients into the trainer's buffer.
// Kernels: kernels.h (forward ops shared with inference) and train_kernels.h (the rest, and every
// adjoint). GEMMs are cuBLAS with the checkpoint's fused row order, so each block's backward is four
// weight-gradient GEMMs ([gate|q|k|v], o, [gate|up], down) and four input-gradient GEMMs.
//
// By default (CudaTrainOptions::hold_state) the backend also holds the training state on the GPU
// (TrainBackend::holds_state): fp32 master weights, Adam-atan2 moments and EMA per fused buffer,
// gradients accumulated over a step's micro-batches, all-reduced over NCCL (or through host memory
// when NCCL is missing), the Adam-atan2 kernel, and the bf16 copies refreshed from the masters.
// The trainer keeps the step counters and computes each step's scalars (AdamAtan2::begin_step).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "common/error.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/cuda_model.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/nccl_allreduce.h"
#include "runtime/cuda/train_kernels.h"
#include "runtime/cuda_backend.h"
#include "runtime/dist.h"
#include "runtime/optimizer.h"
#include "runtime/train.h"

namespace hrm::cuda {
namespace {

// A bump allocator over one device buffer, grown (never shrunk) on demand.
class Arena {
 public:
  // Makes room for `bytes` and forgets earlier allocations.
  void reset(size_t bytes) {
    if (bytes > buf_.bytes()) buf_ = DeviceBuffer(bytes);
    off_ = 0;
  }
  template <typename T>
  T* take(int64_t n) {
    const size_t bytes = aligned(static_cast<size_t>(n) * sizeof(T));
    HRM_CHECK(off_ + bytes <= buf_.bytes(), "CUDA training: arena overflow (an internal sizing error)");
    T* p = reinterpret_cast<T*>(buf_.as<char>() + off_);
    off_ += bytes;
    return p;
  }
  static size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

 private:
  DeviceBuffer buf_;
  size_t off_ = 0;
};

struct DevBlock {
  DeviceBuffer gqkv, o, gu, down;  // bf16 [4A, D], [D, A], [2I, D], [D, I]
};
struct GradBlock {
  DeviceBuffer gqkv, o, gu, down;  // fp32, same shapes
};

// What the backward of one block needs from its forward.
struct SavedBlock {
  float *x_in, *x_mid;  // fp32 [T, D]
  bf16* gqkv;           // [T, 4A], q and k after RoPE
  bf16* attn;           // [T, A], before the output gate
  float* lse;           // [heads, T]
  bf16* gu;             // [T, 2I], before SwiGLU
};
struct SavedStack {
  std::vector<SavedBlock> blocks;
  float* exit_in = nullptr;  // fp32 [T, D]
};

class CudaTrainBackend final : public TrainBackend {
 public:
  explicit CudaTrainBackend(const CudaTrainOptions& o) : hold_(o.hold_state) {
    std::string why;
    if (!cuda_available(&why)) throw Error(cat("--backend cuda: ", why));
    int count = 0;
    HRM_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (o.device < 0 || o.device >= count)
      throw Error(cat("CUDA training: device ", o.device, " requested, ", count, " present"));
    device_ = o.device;
    HRM_CUDA_CHECK(cudaSetDevice(device_));
    HRM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    HRM_CUBLAS_CHECK(cublasCreate(&cublas_));
    HRM_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    workspace_ = DeviceBuffer(size_t{32} << 20);
    HRM_CUBLAS_CHECK(cublasSetWorkspace(cublas_, workspace_.as<void>(), workspace_.bytes()));
  }
  ~CudaTrainBackend() override {
    if (cublas_) cublasDestroy(cublas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }
  void weights_updated() override { weights_src_ = nullptr; }
  LossResult forward_backward(const ModelConfig& cfg, const ModelWeights& w, const PackedBatch& batch,
                              int64_t bp_steps, ModelWeights* grads, int64_t grad_tokens) override;

  bool holds_state() const override { return hold_; }
  void load_state(const ModelConfig& cfg, const ModelWeights& w, const AdamAtan2& opt, Communicator& comm) override;
  void begin_step() override;
  LossResult accumulate(const ModelConfig& cfg, const PackedBatch& batch, int64_t bp_steps,
                        int64_t grad_tokens) override;
  void update(const AdamStep& step, Communicator& comm) override;
  void store_state(ModelWeights& w, AdamAtan2& opt) override;

 private:
  // Loss and (when want_grad) gradients of one batch into the device gradient buffers, which are
  // zeroed first when `zero_grads`; nothing is copied back.
  LossResult run(const ModelConfig& cfg, const PackedBatch& batch, int64_t bp_steps, bool want_grad,
                 int64_t grad_tokens, bool zero_grads);
  void zero_grads();
  // The training state on the GPU, per fused buffer (the embedding, each block's gqkv/o/gu/down, the
  // lm_head) and per trainable tensor (trainable_tensors order: a slice of one fused buffer).
  struct Fused {
    float* master = nullptr;  // fp32 weights (for the embedding: embed_ itself)
    float* grad = nullptr;
    bf16* copy = nullptr;     // the bf16 weights the GEMMs read; null for the embedding
    size_t n = 0;
    DeviceBuffer own_master, m, v, ema;
  };
  struct TensorSlice {
    size_t fused, offset, n;
  };
  void build_state_layout();
  void ensure_model(const ModelConfig& cfg, const ModelWeights& w);
  void upload_batch(const PackedBatch& batch, const std::vector<int32_t>& loss_rows);
  void size_buffers(int64_t T, int64_t saved_invocations, int64_t loss_rows);
  void stack_forward(const std::vector<DevBlock>& blocks, float* x, SavedStack* save);
  void stack_backward(const std::vector<DevBlock>& blocks, std::vector<GradBlock>& grads, const SavedStack& s,
                      float*& d, float*& spare);
  void download_add(const DeviceBuffer& src, std::initializer_list<std::vector<float>*> parts);

  // y[rows, out] = x[rows, in] w[out, in]^T (+ beta y); y bf16 or fp32.
  void gemm(const bf16* x, int rows, int in, const bf16* w, int out, void* y, bool y_f32, float beta);
  // dx[rows, in] = dy[rows, out] w[out, in], fp32.
  void gemm_dx(const bf16* dy, int rows, int out, const bf16* w, int in, float* dx);
  // dw[out, in] += dy[rows, out]^T x[rows, in], fp32.
  void gemm_dw(const bf16* dy, int rows, int out, const bf16* x, int in, float* dw);

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer workspace_;

  // Model: shapes, bf16 weights (fp32 embedding table), fp32 gradients.
  ModelConfig cfg_;
  bool have_model_ = false;
  const ModelWeights* weights_src_ = nullptr;  // what the device copy was made from
  int64_t D_ = 0, A_ = 0, I_ = 0, V_ = 0, heads_ = 0, hd_ = 0;
  DeviceBuffer embed_, lm_head_, z_L_init_, inv_freq_;
  std::vector<DevBlock> L_, H_;
  DeviceBuffer g_embed_, g_lm_head_;
  std::vector<GradBlock> gL_, gH_;

  // This call's batch.
  int64_t T_ = 0, N_ = 0;
  DeviceBuffer meta_;
  int32_t *tokens_ = nullptr, *positions_ = nullptr, *loss_rows_ = nullptr, *labels_ = nullptr;
  int32_t *emb_token_ = nullptr, *emb_begin_ = nullptr, *emb_order_ = nullptr;
  int n_emb_tokens_ = 0;
  TrainSeq* seqs_ = nullptr;
  TrainTile* tiles_ = nullptr;
  int num_tiles_ = 0;

  // Scratch for T rows and the saved activations.
  Arena scratch_, saved_;
  float *x_ = nullptr, *zH_ = nullptr, *zL_ = nullptr, *dX_ = nullptr, *dzH_ = nullptr, *dzL_ = nullptr,
        *dn_ = nullptr, *dh_ = nullptr, *datt_ = nullptr, *lse_ = nullptr, *delta_ = nullptr;
  bf16 *normed_ = nullptr, *dx16_ = nullptr, *gqkv_ = nullptr, *attn_ = nullptr, *gated_ = nullptr, *gu_ = nullptr,
       *h_ = nullptr, *dgu_ = nullptr, *dattn_ = nullptr, *dgqkv_ = nullptr;
  // Loss, in chunks of loss_chunk_ rows.
  int64_t loss_chunk_ = 0;
  bf16 *h_rows_ = nullptr, *dlogits_ = nullptr;
  float *logits_ = nullptr, *dh_rows_ = nullptr, *row_loss_ = nullptr;
  int32_t* row_correct_ = nullptr;
  std::vector<SavedStack> saved_stacks_;
  std::vector<float> host_staging_;

  // Held state (hold_).
  bool hold_ = true;
  bool state_loaded_ = false, ema_ = false;
  std::vector<Fused> fused_;
  std::vector<TensorSlice> slices_;
  std::unique_ptr<NcclAllReduce> nccl_;
};

void CudaTrainBackend::gemm(const bf16* x, int rows, int in, const bf16* w, int out, void* y, bool y_f32,
                            float beta) {
  if (rows == 0) return;
  const float alpha = 1.f;
  HRM_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &alpha, w, CUDA_R_16BF, in, x,
                                CUDA_R_16BF, in, &beta, y, y_f32 ? CUDA_R_32F : CUDA_R_16BF, out, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
}

void CudaTrainBackend::gemm_dx(const bf16* dy, int rows, int out, const bf16* w, int in, float* dx) {
  if (rows == 0) return;
  const float alpha = 1.f, beta = 0.f;
  // Column-major: dx^T [in, rows] = w^T [in, out] (w row-major as stored) * dy^T [out, rows].
  HRM_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_N, CUBLAS_OP_N, in, rows, out, &alpha, w, CUDA_R_16BF, in, dy,
                                CUDA_R_16BF, out, &beta, dx, CUDA_R_32F, in, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaTrainBackend::gemm_dw(const bf16* dy, int rows, int out, const bf16* x, int in, float* dw) {
  if (rows == 0) return;
  const float alpha = 1.f, beta = 1.f;
  // Column-major: dw^T [in, out] += x^T [in, rows] * dy [rows, out].
  HRM_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_N, CUBLAS_OP_T, in, out, rows, &alpha, x, CUDA_R_16BF, in, dy,
                                CUDA_R_16BF, out, &beta, dw, CUDA_R_32F, in, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaTrainBackend::ensure_model(const ModelConfig& cfg, const ModelWeights& w) {
  const bool same_shape = have_model_ && cfg.hidden_size == cfg_.hidden_size && cfg.vocab_size == cfg_.vocab_size &&
                          cfg.num_attention_heads == cfg_.num_attention_heads && cfg.head_dim == cfg_.head_dim &&
                          cfg.intermediate_size == cfg_.intermediate_size &&
                          cfg.num_layers_per_stack == cfg_.num_layers_per_stack && cfg.rope_theta == cfg_.rope_theta;
  cfg_ = cfg;  // eps, cycles and scales may change without a new upload
  if (same_shape && weights_src_ == &w) return;
  if (!train_attention_supports_head_dim(static_cast<int>(cfg.head_dim)))
    throw Error(cat("CUDA training: head_dim ", cfg.head_dim, " is not supported (16, 32, 64 or 128)"));
  D_ = cfg.hidden_size, A_ = cfg.attn_dim(), I_ = cfg.intermediate_size, V_ = cfg.vocab_size;
  heads_ = cfg.num_attention_heads, hd_ = cfg.head_dim;
  const auto f32 = [](int64_t n) { return DeviceBuffer(static_cast<size_t>(n) * sizeof(float)); };
  const auto b16 = [](int64_t n) { return DeviceBuffer(static_cast<size_t>(n) * sizeof(bf16)); };
  if (!same_shape) {
    embed_ = f32(V_ * D_), lm_head_ = b16(V_ * D_), z_L_init_ = f32(D_), inv_freq_ = f32(hd_ / 2);
    g_embed_ = f32(V_ * D_), g_lm_head_ = f32(V_ * D_);
    const auto make = [&](std::vector<DevBlock>& dev, std::vector<GradBlock>& grad, size_t n) {
      dev.clear(), grad.clear();
      for (size_t i = 0; i < n; ++i) {
        dev.push_back({b16(4 * A_ * D_), b16(D_ * A_), b16(2 * I_ * D_), b16(D_ * I_)});
        grad.push_back({f32(4 * A_ * D_), f32(D_ * A_), f32(2 * I_ * D_), f32(D_ * I_)});
      }
    };
    make(L_, gL_, w.L.size());
    make(H_, gH_, w.H.size());
    std::vector<float> inv_freq(hd_ / 2);
    const float theta = static_cast<float>(cfg.rope_theta);
    for (size_t i = 0; i < inv_freq.size(); ++i)  // as Model and cpu_forward_backward: 1 / theta^(2i/d) in fp32
      inv_freq[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(hd_));
    HRM_CUDA_CHECK(cudaMemcpy(inv_freq_.as<void>(), inv_freq.data(), inv_freq.size() * sizeof(float),
                              cudaMemcpyHostToDevice));
    have_model_ = true;
  }
  HRM_CHECK(w.L.size() == static_cast<size_t>(cfg.num_layers_per_stack) &&
                w.H.size() == static_cast<size_t>(cfg.num_layers_per_stack) &&
                w.embed.size() == static_cast<size_t>(V_ * D_) && w.lm_head.size() == static_cast<size_t>(V_ * D_) &&
                w.z_L_init.size() == static_cast<size_t>(D_),
            "CUDA training: the weights do not match the model config");
  HRM_CUDA_CHECK(cudaMemcpy(embed_.as<void>(), w.embed.data(), w.embed.size() * sizeof(float), cudaMemcpyHostToDevice));
  HRM_CUDA_CHECK(
      cudaMemcpy(z_L_init_.as<void>(), w.z_L_init.data(), w.z_L_init.size() * sizeof(float), cudaMemcpyHostToDevice));
  copy_to_device_bf16({&w.lm_head}, lm_head_.as<bf16>());
  const auto upload = [&](const std::vector<BlockWeights>& src, std::vector<DevBlock>& dst) {
    for (size_t i = 0; i < src.size(); ++i) {
      const BlockWeights& b = src[i];
      copy_to_device_bf16({&b.gate, &b.q, &b.k, &b.v}, dst[i].gqkv.as<bf16>());
      copy_to_device_bf16({&b.o}, dst[i].o.as<bf16>());
      copy_to_device_bf16({&b.mlp_gate, &b.up}, dst[i].gu.as<bf16>());
      copy_to_device_bf16({&b.down}, dst[i].down.as<bf16>());
    }
  };
  upload(w.L, L_);
  upload(w.H, H_);
  // Pageable uploads may still be in flight on the legacy stream, which our stream does not wait for.
  HRM_CUDA_CHECK(cudaDeviceSynchronize());
  weights_src_ = &w;
}

void CudaTrainBackend::size_buffers(int64_t T, int64_t saved_invocations, int64_t loss_rows) {
  const auto f = [](int64_t n) { return Arena::aligned(static_cast<size_t>(n) * sizeof(float)); };
  const auto b = [](int64_t n) { return Arena::aligned(static_cast<size_t>(n) * sizeof(bf16)); };
  // Loss rows in chunks whose logits, and their gradient, take about 512 MiB.
  loss_chunk_ = std::clamp<int64_t>((int64_t{512} << 20) / (V_ * 6), 16, std::max<int64_t>(16, loss_rows));
  const int64_t R = loss_chunk_;
  const size_t scratch = 7 * f(T * D_) + f(T * I_) + f(T * A_) + 2 * f(heads_ * T) + 2 * b(T * D_) +
                         2 * b(T * 4 * A_) + 3 * b(T * A_) + 2 * b(T * 2 * I_) + b(T * I_) + b(R * D_) +
                         f(R * V_) + b(R * V_) + f(R * D_) + f(loss_rows) + f(loss_rows);
  scratch_.reset(scratch);
  x_ = scratch_.take<float>(T * D_), zH_ = scratch_.take<float>(T * D_), zL_ = scratch_.take<float>(T * D_);
  dX_ = scratch_.take<float>(T * D_), dzH_ = scratch_.take<float>(T * D_), dzL_ = scratch_.take<float>(T * D_);
  dn_ = scratch_.take<float>(T * D_), dh_ = scratch_.take<float>(T * I_), datt_ = scratch_.take<float>(T * A_);
  lse_ = scratch_.take<float>(heads_ * T), delta_ = scratch_.take<float>(heads_ * T);
  normed_ = scratch_.take<bf16>(T * D_), dx16_ = scratch_.take<bf16>(T * D_);
  gqkv_ = scratch_.take<bf16>(T * 4 * A_), dgqkv_ = scratch_.take<bf16>(T * 4 * A_);
  attn_ = scratch_.take<bf16>(T * A_), gated_ = scratch_.take<bf16>(T * A_), dattn_ = scratch_.take<bf16>(T * A_);
  gu_ = scratch_.take<bf16>(T * 2 * I_), dgu_ = scratch_.take<bf16>(T * 2 * I_), h_ = scratch_.take<bf16>(T * I_);
  h_rows_ = scratch_.take<bf16>(R * D_), logits_ = scratch_.take<float>(R * V_), dlogits_ = scratch_.take<bf16>(R * V_);
  dh_rows_ = scratch_.take<float>(R * D_);
  row_loss_ = scratch_.take<float>(loss_rows), row_correct_ = scratch_.take<int32_t>(loss_rows);

  const int64_t layers = cfg_.num_layers_per_stack;
  const size_t per_block = 2 * f(T * D_) + b(T * 4 * A_) + b(T * A_) + f(heads_ * T) + b(T * 2 * I_);
  saved_.reset(static_cast<size_t>(saved_invocations) * (layers * per_block + f(T * D_)));
  saved_stacks_.assign(saved_invocations, {});
  for (SavedStack& s : saved_stacks_) {
    for (int64_t l = 0; l < layers; ++l) {
      SavedBlock sb;
      sb.x_in = saved_.take<float>(T * D_), sb.x_mid = saved_.take<float>(T * D_);
      sb.gqkv = saved_.take<bf16>(T * 4 * A_), sb.attn = saved_.take<bf16>(T * A_);
      sb.lse = saved_.take<float>(heads_ * T), sb.gu = saved_.take<bf16>(T * 2 * I_);
      s.blocks.push_back(sb);
    }
    s.exit_in = saved_.take<float>(T * D_);
  }
}

void CudaTrainBackend::upload_batch(const PackedBatch& batch, const std::vector<int32_t>& loss_rows) {
  const int64_t T = batch.size();
  std::vector<TrainSeq> seqs;
  for (const cpu::SeqSpan& s : batch.seqs)
    seqs.push_back({static_cast<int32_t>(s.start), static_cast<int32_t>(s.len), static_cast<int32_t>(s.prefix)});
  const std::vector<TrainTile> tiles = train_tiles(seqs);
  num_tiles_ = static_cast<int>(tiles.size());
  // The embedding's gradient, per distinct token, sums its rows in row order.
  std::vector<int32_t> order(T);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return batch.tokens[a] < batch.tokens[b]; });
  std::vector<int32_t> emb_token, emb_begin;
  for (int64_t i = 0; i < T; ++i)
    if (i == 0 || batch.tokens[order[i]] != batch.tokens[order[i - 1]]) {
      emb_token.push_back(static_cast<int32_t>(batch.tokens[order[i]]));
      emb_begin.push_back(static_cast<int32_t>(i));
    }
  emb_begin.push_back(static_cast<int32_t>(T));
  n_emb_tokens_ = static_cast<int>(emb_token.size());

  // Everything in one int32 host image, then one copy.
  std::vector<int32_t> img;
  std::vector<size_t> at;
  const auto put = [&](const int32_t* p, size_t n) {
    img.resize((img.size() + 63) / 64 * 64);  // 256-byte alignment for every array
    at.push_back(img.size());
    img.insert(img.end(), p, p + n);
  };
  std::vector<int32_t> tok(T), pos(T), labels;
  for (int64_t r = 0; r < T; ++r) tok[r] = batch.tokens[r], pos[r] = static_cast<int32_t>(batch.positions[r]);
  for (int32_t r : loss_rows) labels.push_back(batch.labels[r]);
  static_assert(sizeof(TrainSeq) % 4 == 0 && sizeof(TrainTile) % 4 == 0);
  put(tok.data(), tok.size());
  put(pos.data(), pos.size());
  put(loss_rows.data(), loss_rows.size());
  put(labels.data(), labels.size());
  put(emb_token.data(), emb_token.size());
  put(emb_begin.data(), emb_begin.size());
  put(order.data(), order.size());
  put(reinterpret_cast<const int32_t*>(seqs.data()), seqs.size() * sizeof(TrainSeq) / 4);
  put(reinterpret_cast<const int32_t*>(tiles.data()), tiles.size() * sizeof(TrainTile) / 4);
  if (meta_.bytes() < img.size() * 4) meta_ = DeviceBuffer(img.size() * 4 * 2);
  HRM_CUDA_CHECK(cudaMemcpyAsync(meta_.as<void>(), img.data(), img.size() * 4, cudaMemcpyHostToDevice, stream_));
  int32_t* base = meta_.as<int32_t>();
  tokens_ = base + at[0], positions_ = base + at[1], loss_rows_ = base + at[2], labels_ = base + at[3];
  emb_token_ = base + at[4], emb_begin_ = base + at[5], emb_order_ = base + at[6];
  seqs_ = reinterpret_cast<TrainSeq*>(base + at[7]);
  tiles_ = reinterpret_cast<TrainTile*>(base + at[8]);
  // `img` must outlive the asynchronous copy.
  HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaTrainBackend::stack_forward(const std::vector<DevBlock>& blocks, float* x, SavedStack* save) {
  const int T = static_cast<int>(T_), D = static_cast<int>(D_), A = static_cast<int>(A_), I = static_cast<int>(I_);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const size_t row_bytes = static_cast<size_t>(T) * D * sizeof(float);
  for (size_t b = 0; b < blocks.size(); ++b) {
    const DevBlock& w = blocks[b];
    const SavedBlock* s = save ? &save->blocks[b] : nullptr;
    if (s) HRM_CUDA_CHECK(cudaMemcpyAsync(s->x_in, x, row_bytes, cudaMemcpyDeviceToDevice, stream_));
    bf16* gqkv = s ? s->gqkv : gqkv_;
    bf16* attn = s ? s->attn : attn_;
    float* lse = s ? s->lse : lse_;
    bf16* gu = s ? s->gu : gu_;
    rms_norm(x, T, D, eps, normed_, stream_);
    gemm(normed_, T, D, w.gqkv.as<bf16>(), 4 * A, gqkv, false, 0.f);
    rope_qk(gqkv, T, static_cast<int>(heads_), static_cast<int>(hd_), positions_, inv_freq_.as<float>(), 1.f, stream_);
    train_attention_forward(gqkv, T, seqs_, tiles_, num_tiles_, static_cast<int>(heads_), static_cast<int>(hd_), attn,
                            lse, stream_);
    gate_forward(gqkv, attn, T, A, gated_, stream_);
    gemm(gated_, T, A, w.o.as<bf16>(), D, x, true, 1.f);  // x += o(gated)
    if (s) HRM_CUDA_CHECK(cudaMemcpyAsync(s->x_mid, x, row_bytes, cudaMemcpyDeviceToDevice, stream_));
    rms_norm(x, T, D, eps, normed_, stream_);
    gemm(normed_, T, D, w.gu.as<bf16>(), 2 * I, gu, false, 0.f);
    silu_mul(gu, T, I, h_, stream_);
    gemm(h_, T, I, w.down.as<bf16>(), D, x, true, 1.f);  // x += down(h)
  }
  if (save) HRM_CUDA_CHECK(cudaMemcpyAsync(save->exit_in, x, row_bytes, cudaMemcpyDeviceToDevice, stream_));
  rms_norm_f32(x, T, D, eps, x, stream_);
}

void CudaTrainBackend::stack_backward(const std::vector<DevBlock>& blocks, std::vector<GradBlock>& grads,
                                      const SavedStack& s, float*& d, float*& spare) {
  const int T = static_cast<int>(T_), D = static_cast<int>(D_), A = static_cast<int>(A_), I = static_cast<int>(I_);
  const int heads = static_cast<int>(heads_), hd = static_cast<int>(hd_);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  float* dx = spare;
  rms_norm_backward(s.exit_in, d, T, D, eps, dx, /*accumulate=*/false, stream_);
  for (size_t bi = blocks.size(); bi-- > 0;) {
    const DevBlock& w = blocks[bi];
    GradBlock& g = grads[bi];
    const SavedBlock& a = s.blocks[bi];
    // MLP: x_out = x_mid + down(silu(gate(n2)) * up(n2)), n2 = rms(x_mid).
    rms_norm(a.x_mid, T, D, eps, normed_, stream_);
    silu_mul(a.gu, T, I, h_, stream_);
    to_bf16(dx, int64_t{T} * D, dx16_, stream_);
    gemm_dw(dx16_, T, D, h_, I, g.down.as<float>());
    gemm_dx(dx16_, T, D, w.down.as<bf16>(), I, dh_);
    silu_mul_backward(a.gu, dh_, T, I, dgu_, stream_);
    gemm_dw(dgu_, T, 2 * I, normed_, D, g.gu.as<float>());
    gemm_dx(dgu_, T, 2 * I, w.gu.as<bf16>(), D, dn_);
    rms_norm_backward(a.x_mid, dn_, T, D, eps, dx, /*accumulate=*/true, stream_);
    // Attention: x_mid = x_in + o(sigmoid(gate) * attn(rope(q), rope(k), v)), all of n1 = rms(x_in).
    rms_norm(a.x_in, T, D, eps, normed_, stream_);
    gate_forward(a.gqkv, a.attn, T, A, gated_, stream_);
    to_bf16(dx, int64_t{T} * D, dx16_, stream_);
    gemm_dw(dx16_, T, D, gated_, A, g.o.as<float>());
    gemm_dx(dx16_, T, D, w.o.as<bf16>(), A, datt_);
    gate_backward(a.gqkv, a.attn, datt_, T, heads, hd, dgqkv_, dattn_, delta_, stream_);
    train_attention_backward(a.gqkv, dattn_, a.lse, delta_, T, seqs_, tiles_, num_tiles_, heads, hd, dgqkv_, stream_);
    rope_qk(dgqkv_, T, heads, hd, positions_, inv_freq_.as<float>(), -1.f, stream_);  // the rotation's transpose
    gemm_dw(dgqkv_, T, 4 * A, normed_, D, g.gqkv.as<float>());
    gemm_dx(dgqkv_, T, 4 * A, w.gqkv.as<bf16>(), D, dn_);
    rms_norm_backward(a.x_in, dn_, T, D, eps, dx, /*accumulate=*/true, stream_);
  }
  std::swap(d, spare);  // d now holds the gradient of the stack's input
}

void CudaTrainBackend::download_add(const DeviceBuffer& src, std::initializer_list<std::vector<float>*> parts) {
  size_t n = 0;
  for (const auto* p : parts) n += p->size();
  HRM_CHECK(n * sizeof(float) == src.bytes(), "CUDA training: gradient buffer size mismatch (internal)");
  host_staging_.resize(n);
  HRM_CUDA_CHECK(cudaMemcpy(host_staging_.data(), src.as<void>(), n * sizeof(float), cudaMemcpyDeviceToHost));
  size_t off = 0;
  for (auto* p : parts) {
    float* dst = p->data();
    const float* from = host_staging_.data() + off;
    tbb::parallel_for(tbb::blocked_range<size_t>(0, p->size(), 1 << 16), [&](const auto& r) {
      for (size_t i = r.begin(); i < r.end(); ++i) dst[i] += from[i];
    });
    off += p->size();
  }
}

LossResult CudaTrainBackend::forward_backward(const ModelConfig& cfg, const ModelWeights& w, const PackedBatch& batch,
                                              int64_t bp_steps, ModelWeights* grads, int64_t grad_tokens) {
  if (grads)
    HRM_CHECK(grads->L.size() == w.L.size() && grads->H.size() == w.H.size() &&
                  grads->embed.size() == w.embed.size() && grads->lm_head.size() == w.lm_head.size(),
              "gradient buffer does not match the weights (use zeros_like)");
  HRM_CHECK(!state_loaded_, "CUDA training: forward_backward on a backend that holds the training state");
  HRM_CUDA_CHECK(cudaSetDevice(device_));
  ensure_model(cfg, w);
  const LossResult res = run(cfg, batch, bp_steps, grads != nullptr, grad_tokens, /*zero_grads=*/true);
  if (!grads || res.loss_tokens == 0) return res;
  // Add into the trainer's buffer, unfusing the projections.
  download_add(g_lm_head_, {&grads->lm_head});
  if (res.embed_reached) download_add(g_embed_, {&grads->embed});
  const auto add_stack = [&](std::vector<GradBlock>& dev, std::vector<BlockWeights>& host) {
    for (size_t b = 0; b < dev.size(); ++b) {
      BlockWeights& h = host[b];
      download_add(dev[b].gqkv, {&h.gate, &h.q, &h.k, &h.v});
      download_add(dev[b].o, {&h.o});
      download_add(dev[b].gu, {&h.mlp_gate, &h.up});
      download_add(dev[b].down, {&h.down});
    }
  };
  if (res.H_reached) add_stack(gH_, grads->H);
  if (res.L_reached) add_stack(gL_, grads->L);
  return res;
}

void CudaTrainBackend::zero_grads() {
  HRM_CUDA_CHECK(cudaMemsetAsync(g_lm_head_.as<void>(), 0, g_lm_head_.bytes(), stream_));
  HRM_CUDA_CHECK(cudaMemsetAsync(g_embed_.as<void>(), 0, g_embed_.bytes(), stream_));
  for (auto* gs : {&gL_, &gH_})
    for (GradBlock& g : *gs)
      for (DeviceBuffer* b : {&g.gqkv, &g.o, &g.gu, &g.down})
        HRM_CUDA_CHECK(cudaMemsetAsync(b->as<void>(), 0, b->bytes(), stream_));
}

LossResult CudaTrainBackend::run(const ModelConfig& cfg, const PackedBatch& batch, int64_t bp_steps, bool want_grad,
                                 int64_t grad_tokens, bool zero) {
  // The checks every backend makes, before anything is launched.
  const std::vector<int64_t> rows = checked_loss_rows(cfg, batch, grad_tokens);
  const int64_t T = batch.size(), V = cfg.vocab_size;
  HRM_CHECK(T < (int64_t{1} << 31) / 4, "CUDA training: ", T, " rows in one batch are too many");
  const std::vector<int32_t> loss_rows(rows.begin(), rows.end());
  const int64_t N = static_cast<int64_t>(loss_rows.size());
  LossResult res;
  res.loss_tokens = N;
  if (N == 0) return res;

  const BackpropPlan plan(cfg, bp_steps);
  struct Invocation {
    bool is_H, grad;
    int saved;  // index into saved_stacks_, or -1
  };
  std::vector<Invocation> invs;
  int saved_count = 0;
  for (int64_t hc = 0; hc < cfg.H_cycles; ++hc) {
    for (int64_t l = 0; l < cfg.L_cycles; ++l) {
      const bool g = want_grad && plan.L_grad(cfg, hc * cfg.L_cycles + l);
      invs.push_back({false, g, g ? saved_count++ : -1});
    }
    const bool g = want_grad && plan.H_grad(cfg, hc);
    invs.push_back({true, g, g ? saved_count++ : -1});
  }
  T_ = T, N_ = N;
  size_buffers(T, saved_count, N);
  upload_batch(batch, loss_rows);
  const int D = static_cast<int>(D_);
  const int64_t TD = T * D_;

  // Forward: z_H = embed * scale, z_L = z_L_init; then the invocations in time order.
  embed(tokens_, static_cast<int>(T), embed_.as<float>(), z_L_init_.as<float>(), D,
        static_cast<float>(cfg.embedding_scale), zH_, zL_, stream_);
  float *zH = zH_, *zL = zL_, *x = x_;
  for (const Invocation& inv : invs) {
    SavedStack* save = inv.saved >= 0 ? &saved_stacks_[inv.saved] : nullptr;
    if (inv.is_H) {
      add(zH, zL, TD, x, stream_);
      stack_forward(H_, x, save);
      std::swap(zH, x);
    } else {
      add(zL, zH, TD, x, stream_);
      stack_forward(L_, x, save);
      std::swap(zL, x);
    }
  }

  // Loss over the labelled rows, chunk by chunk; the lm_head's gradients as each chunk is done.
  const float inv_n = 1.0f / static_cast<float>(grad_tokens > 0 ? grad_tokens : N);
  float* dzH = dzH_;
  float* dzL = dzL_;
  float* spare = dX_;
  if (want_grad) {
    if (zero) zero_grads();
    HRM_CUDA_CHECK(cudaMemsetAsync(dzH, 0, TD * sizeof(float), stream_));
  }
  for (int64_t c0 = 0; c0 < N; c0 += loss_chunk_) {
    const int n = static_cast<int>(std::min<int64_t>(loss_chunk_, N - c0));
    gather_rows(zH, loss_rows_ + c0, n, D, h_rows_, stream_);
    gemm(h_rows_, n, D, lm_head_.as<bf16>(), static_cast<int>(V), logits_, true, 0.f);
    cross_entropy(logits_, labels_ + c0, n, static_cast<int>(V), inv_n, row_loss_ + c0, row_correct_ + c0, dlogits_,
                  stream_);
    if (!want_grad) continue;
    gemm_dw(dlogits_, n, static_cast<int>(V), h_rows_, D, g_lm_head_.as<float>());
    gemm_dx(dlogits_, n, static_cast<int>(V), lm_head_.as<bf16>(), D, dh_rows_);
    scatter_rows(dh_rows_, loss_rows_ + c0, n, D, dzH, stream_);
  }
  std::vector<float> row_loss(N);
  std::vector<int32_t> row_correct(N);
  HRM_CUDA_CHECK(cudaMemcpyAsync(row_loss.data(), row_loss_, N * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  HRM_CUDA_CHECK(
      cudaMemcpyAsync(row_correct.data(), row_correct_, N * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  double total = 0;
  for (int64_t n = 0; n < N; ++n) total += row_loss[n], res.correct += row_correct[n];
  res.loss_sum = total;
  res.loss = total / static_cast<double>(N);
  if (!want_grad) return res;
  res.lm_head_reached = true;

  // Backward in reverse time order, as cpu_forward_backward: a detached invocation drops the gradient
  // of its output, and known-zero gradients skip whole invocations.
  bool zero_H = false, zero_L = true;
  for (size_t i = invs.size(); i-- > 0;) {
    const Invocation& inv = invs[i];
    float*& d_out = inv.is_H ? dzH : dzL;
    float*& d_other = inv.is_H ? dzL : dzH;
    bool& zero_out = inv.is_H ? zero_H : zero_L;
    bool& zero_other = inv.is_H ? zero_L : zero_H;
    if (zero_out) continue;
    if (!inv.grad) {
      zero_out = true;  // its buffer is cleared if it is ever written as "other" again (the copy below)
      continue;
    }
    (inv.is_H ? res.H_reached : res.L_reached) = true;
    stack_backward(inv.is_H ? H_ : L_, inv.is_H ? gH_ : gL_, saved_stacks_[inv.saved], d_out, spare);
    if (zero_other) {
      HRM_CUDA_CHECK(cudaMemcpyAsync(d_other, d_out, TD * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
      zero_other = false;
    } else {
      add_into(d_other, d_out, TD, stream_);
    }
  }
  if (!zero_H) {
    res.embed_reached = true;
    embed_backward(dzH, emb_token_, emb_begin_, emb_order_, n_emb_tokens_, D, static_cast<float>(cfg.embedding_scale),
                   g_embed_.as<float>(), stream_);
  }
  HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return res;
}

void CudaTrainBackend::build_state_layout() {
  // Fused buffers in the order their tensors appear in trainable_tensors: the embedding, then per
  // block of H and then L: [gate|q|k|v], o, [gate|up], down; last the lm_head.
  fused_.clear();
  slices_.clear();
  const size_t D = D_, A = A_, I = I_, V = V_;
  const auto add_fused = [&](float* master, float* grad, bf16* copy, size_t n) {
    Fused f;
    f.master = master, f.grad = grad, f.copy = copy, f.n = n;
    fused_.push_back(std::move(f));
    return fused_.size() - 1;
  };
  const size_t emb = add_fused(embed_.as<float>(), g_embed_.as<float>(), nullptr, V * D);
  slices_.push_back({emb, 0, V * D});
  for (auto [dev, grad] : {std::pair{&H_, &gH_}, std::pair{&L_, &gL_}}) {
    for (size_t b = 0; b < dev->size(); ++b) {
      DevBlock& w = (*dev)[b];
      GradBlock& g = (*grad)[b];
      const size_t gqkv = add_fused(nullptr, g.gqkv.as<float>(), w.gqkv.as<bf16>(), 4 * A * D);
      for (size_t part = 0; part < 4; ++part) slices_.push_back({gqkv, part * A * D, A * D});  // gate, q, k, v
      slices_.push_back({add_fused(nullptr, g.o.as<float>(), w.o.as<bf16>(), D * A), 0, D * A});
      const size_t gu = add_fused(nullptr, g.gu.as<float>(), w.gu.as<bf16>(), 2 * I * D);
      slices_.push_back({gu, 0, I * D});
      slices_.push_back({gu, I * D, I * D});
      slices_.push_back({add_fused(nullptr, g.down.as<float>(), w.down.as<bf16>(), D * I), 0, D * I});
    }
  }
  const size_t lm = add_fused(nullptr, g_lm_head_.as<float>(), lm_head_.as<bf16>(), V * D);
  slices_.push_back({lm, 0, V * D});
  for (Fused& f : fused_) {
    const size_t bytes = f.n * sizeof(float);
    if (!f.master) {
      f.own_master = DeviceBuffer(bytes);
      f.master = f.own_master.as<float>();
    }
    f.m = DeviceBuffer(bytes), f.v = DeviceBuffer(bytes);
    if (ema_) f.ema = DeviceBuffer(bytes);
  }
}

void CudaTrainBackend::load_state(const ModelConfig& cfg, const ModelWeights& w, const AdamAtan2& opt,
                                  Communicator& comm) {
  HRM_CHECK(hold_, "CUDA training: load_state on a backend built with hold_state = false");
  HRM_CUDA_CHECK(cudaSetDevice(device_));
  weights_src_ = nullptr;  // upload the bf16 copies
  ensure_model(cfg, w);
  ema_ = !opt.ema().empty();
  build_state_layout();
  ModelWeights& wv = const_cast<ModelWeights&>(w);  // trainable_tensors hands out views; nothing is written
  const std::vector<NamedTensor> ts = trainable_tensors(wv);
  HRM_CHECK(ts.size() == slices_.size() && opt.m().size() == slices_.size(),
            "CUDA training: the optimizer state does not match the model (", opt.m().size(), " tensors, expected ",
            slices_.size(), ")");
  const auto put = [&](float* base, const std::vector<float>& host, const TensorSlice& sl, const std::string& what) {
    HRM_CHECK(host.size() == sl.n, "CUDA training: ", what, " has ", host.size(), " values, expected ", sl.n);
    HRM_CUDA_CHECK(cudaMemcpyAsync(base + sl.offset, host.data(), sl.n * sizeof(float), cudaMemcpyHostToDevice,
                                   stream_));
  };
  for (size_t t = 0; t < slices_.size(); ++t) {
    const TensorSlice& sl = slices_[t];
    Fused& f = fused_[sl.fused];
    put(f.master, *ts[t].data, sl, ts[t].name);
    put(f.m.as<float>(), opt.m()[t], sl, "optim.m." + ts[t].name);
    put(f.v.as<float>(), opt.v()[t], sl, "optim.v." + ts[t].name);
    if (ema_) put(f.ema.as<float>(), opt.ema()[t], sl, "ema." + ts[t].name);
  }
  HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  nccl_.reset();
  if (comm.world_size() > 1) {
    std::string why = "this binary was built without nccl.h";
#ifdef HRM_HAVE_NCCL
    if (NcclAllReduce::available(&why)) nccl_ = std::make_unique<NcclAllReduce>(comm, stream_);
#endif
    if (!nccl_ && comm.rank() == 0)
      std::fprintf(stderr, "CUDA training: %s; gradients are all-reduced through host memory\n", why.c_str());
  }
  state_loaded_ = true;
}

void CudaTrainBackend::begin_step() {
  HRM_CHECK(state_loaded_, "CUDA training: begin_step before load_state");
  HRM_CUDA_CHECK(cudaSetDevice(device_));
  zero_grads();
}

LossResult CudaTrainBackend::accumulate(const ModelConfig& cfg, const PackedBatch& batch, int64_t bp_steps,
                                        int64_t grad_tokens) {
  HRM_CHECK(state_loaded_, "CUDA training: accumulate before load_state");
  HRM_CHECK(cfg.hidden_size == cfg_.hidden_size && cfg.vocab_size == cfg_.vocab_size &&
                cfg.num_layers_per_stack == cfg_.num_layers_per_stack,
            "CUDA training: accumulate with another model than load_state's");
  HRM_CUDA_CHECK(cudaSetDevice(device_));
  cfg_ = cfg;
  return run(cfg, batch, bp_steps, /*want_grad=*/true, grad_tokens, /*zero_grads=*/false);
}

void CudaTrainBackend::update(const AdamStep& step, Communicator& comm) {
  HRM_CHECK(state_loaded_, "CUDA training: update before load_state");
  HRM_CUDA_CHECK(cudaSetDevice(device_));
  HRM_CHECK(step.active.size() == slices_.size(), "CUDA training: the step has ", step.active.size(),
            " tensors, the model ", slices_.size());
  std::vector<char> fused_active(fused_.size(), 0);
  for (size_t t = 0; t < slices_.size(); ++t) fused_active[slices_[t].fused] |= step.active[t];
  // Sum the gradients over the ranks: a fused buffer's tensors are active together (one group each).
  if (comm.world_size() > 1) {
    for (size_t f = 0; f < fused_.size(); ++f) {
      if (!fused_active[f]) continue;
      if (nccl_) {
        nccl_->sum(fused_[f].grad, fused_[f].n);
        continue;
      }
      host_staging_.resize(fused_[f].n);
      HRM_CUDA_CHECK(cudaMemcpyAsync(host_staging_.data(), fused_[f].grad, fused_[f].n * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream_));
      HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
      comm.all_reduce_sum(std::span<float>(host_staging_));
      HRM_CUDA_CHECK(cudaMemcpyAsync(fused_[f].grad, host_staging_.data(), fused_[f].n * sizeof(float),
                                     cudaMemcpyHostToDevice, stream_));
      HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }
  for (size_t t = 0; t < slices_.size(); ++t) {
    if (!step.active[t]) continue;
    const TensorSlice& sl = slices_[t];
    Fused& f = fused_[sl.fused];
    const AdamScalars sc{step.decay, step.b1c, step.b2, step.b2c, step.step_size[t], step.inv_sqrt_bc2[t], step.ema_w};
    adam_atan2(f.master + sl.offset, f.grad + sl.offset, f.m.as<float>() + sl.offset, f.v.as<float>() + sl.offset,
               step.ema ? f.ema.as<float>() + sl.offset : nullptr, static_cast<int64_t>(sl.n), sc, stream_);
  }
  // The GEMMs' bf16 copies follow the masters (the embedding is read in fp32 from its master).
  for (size_t f = 0; f < fused_.size(); ++f)
    if (fused_active[f] && fused_[f].copy) to_bf16(fused_[f].master, static_cast<int64_t>(fused_[f].n), fused_[f].copy, stream_);
  HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaTrainBackend::store_state(ModelWeights& w, AdamAtan2& opt) {
  HRM_CHECK(state_loaded_, "CUDA training: store_state before load_state");
  HRM_CUDA_CHECK(cudaSetDevice(device_));
  const std::vector<NamedTensor> ts = trainable_tensors(w);
  const auto get = [&](std::vector<float>& host, const float* base, const TensorSlice& sl) {
    host.resize(sl.n);
    HRM_CUDA_CHECK(cudaMemcpyAsync(host.data(), base + sl.offset, sl.n * sizeof(float), cudaMemcpyDeviceToHost,
                                   stream_));
  };
  for (size_t t = 0; t < slices_.size(); ++t) {
    const TensorSlice& sl = slices_[t];
    const Fused& f = fused_[sl.fused];
    get(*ts[t].data, f.master, sl);
    get(opt.m()[t], f.m.as<float>(), sl);
    get(opt.v()[t], f.v.as<float>(), sl);
    if (ema_) get(opt.ema()[t], f.ema.as<float>(), sl);
  }
  HRM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace
}  // namespace hrm::cuda

namespace hrm {

std::unique_ptr<TrainBackend> make_cuda_train_backend(const CudaTrainOptions& options) {
  return std::make_unique<cuda::CudaTrainBackend>(options);
}

}  // namespace hrm
