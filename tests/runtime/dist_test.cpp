// Data parallelism without MPI: the single-process communicator, the launcher detection, the
// gradient normalisation by the global loss-token count (per-rank gradients add up to the union
// batch's), and the Trainer run as two ranks on threads (a test communicator) against one process
// that accumulates the same global batches. The MPI launch itself is tested in dist_cli_test.cpp.
#include "runtime/dist.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <barrier>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <random>
#include <thread>

#include "common/error.h"
#include "runtime/trainer.h"
#include "tests/runtime/train_test_util.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

// Ranks as threads of this process. Sums are formed in rank order on every rank, so all ranks get
// the same bits (as MPI guarantees them) and two ranks give a + b exactly.
class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : n_(n), sync_(n), ptrs_(static_cast<size_t>(n)) {}

 private:
  friend class ThreadComm;
  int n_;
  std::barrier<> sync_;
  std::vector<void*> ptrs_;
};

class ThreadComm final : public Communicator {
 public:
  ThreadComm(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  std::string name() const override { return "threads"; }
  int rank() const override { return rank_; }
  int world_size() const override { return g_.n_; }
  int local_rank() const override { return rank_; }
  int local_size() const override { return g_.n_; }
  void all_reduce_sum(std::span<float> d) override { reduce(d); }
  void all_reduce_sum(std::span<double> d) override { reduce(d); }
  void all_reduce_sum(std::span<int64_t> d) override { reduce(d); }
  void broadcast(std::span<std::byte> d, int root) override {
    g_.ptrs_[rank_] = d.data();
    g_.sync_.arrive_and_wait();
    if (rank_ != root) std::memcpy(d.data(), g_.ptrs_[root], d.size());
    g_.sync_.arrive_and_wait();
  }
  void barrier() override { g_.sync_.arrive_and_wait(); }
  [[noreturn]] void abort(int) override { std::abort(); }

 private:
  template <class T>
  void reduce(std::span<T> d) {
    g_.ptrs_[rank_] = d.data();
    g_.sync_.arrive_and_wait();
    std::vector<T> sum(d.size());
    for (size_t i = 0; i < d.size(); ++i) {
      T s = static_cast<const T*>(g_.ptrs_[0])[i];
      for (int r = 1; r < g_.n_; ++r) s += static_cast<const T*>(g_.ptrs_[r])[i];
      sum[i] = s;
    }
    g_.sync_.arrive_and_wait();  // every rank has read every buffer
    std::copy(sum.begin(), sum.end(), d.begin());
  }

  ThreadGroup& g_;
  int rank_;
};

// Runs body(comm) on `n` threads, one rank each; rethrows the first rank's error.
template <class F>
void on_ranks(int n, F body) {
  ThreadGroup group(n);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      ThreadComm comm(group, r);
      try {
        body(comm);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

using test::random_corpus;
TrainOptions small_options() { return test::small_train_options(); }

// What a run leaves behind, copied out of a trainer.
struct RunResult {
  std::vector<StepStats> stats;
  std::vector<std::vector<float>> tensors;  // weights, then m, v, EMA of every trainable tensor
};

RunResult finish(Trainer& t, std::vector<StepStats> stats) {
  RunResult r{std::move(stats), {}};
  ModelWeights w = t.weights();
  for (NamedTensor& n : trainable_tensors(w)) r.tensors.push_back(*n.data);
  auto& opt = const_cast<AdamAtan2&>(t.optimizer());
  for (auto* state : {&opt.m(), &opt.v(), &opt.ema()})
    for (const auto& x : *state) r.tensors.push_back(x);
  return r;
}

RunResult run(const ModelConfig& cfg, const TrainCorpus& corpus, const TrainOptions& o,
              uint64_t init_seed, Communicator* comm = nullptr) {
  Trainer t(cfg, init_weights(cfg, init_seed), corpus, o, make_cpu_train_backend(), comm);
  std::vector<StepStats> stats;
  while (t.step_count() < o.steps) stats.push_back(t.step());
  return finish(t, std::move(stats));
}

// Largest |a - b| of a tensor relative to its largest |b|, over every tensor.
double max_relative_difference(const RunResult& a, const RunResult& b) {
  double worst = 0;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    double diff = 0, scale = 0;
    for (size_t j = 0; j < a.tensors[i].size(); ++j) {
      diff = std::max(diff, std::abs(static_cast<double>(a.tensors[i][j]) - b.tensors[i][j]));
      scale = std::max(scale, std::abs(static_cast<double>(b.tensors[i][j])));
    }
    if (scale > 0) worst = std::max(worst, diff / scale);
  }
  return worst;
}

// Appends `b`'s samples after `a`'s: the batch one process would pack from both.
PackedBatch concat_batches(PackedBatch a, const PackedBatch& b) {
  const int64_t off = a.size();
  a.tokens.insert(a.tokens.end(), b.tokens.begin(), b.tokens.end());
  a.labels.insert(a.labels.end(), b.labels.begin(), b.labels.end());
  a.positions.insert(a.positions.end(), b.positions.begin(), b.positions.end());
  for (cpu::SeqSpan s : b.seqs) {
    s.start += off;
    a.seqs.push_back(s);
  }
  return a;
}

TEST(Dist, SingleProcessCommunicatorIsANoOp) {
  std::unique_ptr<Communicator> c = make_single_process_communicator();
  EXPECT_EQ(c->name(), "single");
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->world_size(), 1);
  EXPECT_EQ(c->local_rank(), 0);
  EXPECT_EQ(c->local_size(), 1);
  EXPECT_FALSE(c->device_memory());
  std::vector<float> f = {1.5f, -2.25f};
  std::vector<double> d = {0.1, 1e300};
  std::vector<int64_t> i = {7, -1LL << 40};
  std::vector<uint64_t> u = {0xdeadbeefcafeULL};
  c->all_reduce_sum(std::span<float>(f));
  c->all_reduce_sum(std::span<double>(d));
  c->all_reduce_sum(std::span<int64_t>(i));
  broadcast_values(*c, std::span<uint64_t>(u), 0);
  c->barrier();
  EXPECT_EQ(f, (std::vector<float>{1.5f, -2.25f}));
  EXPECT_EQ(d, (std::vector<double>{0.1, 1e300}));
  EXPECT_EQ(i, (std::vector<int64_t>{7, -1LL << 40}));
  EXPECT_EQ(u[0], 0xdeadbeefcafeULL);
  EXPECT_THROW(broadcast_values(*c, std::span<uint64_t>(u), 1), Error);
}

TEST(Dist, LaunchEnvironmentAndMissingMpi) {
  // What Open MPI's mpirun exports; the other launchers' variables are read the same way.
  const char* vars[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK",
                        "PMIX_RANK"};
  for (const char* v : vars)
    if (std::getenv(v)) GTEST_SKIP() << "running under an MPI launcher (" << v << " is set)";
  EXPECT_FALSE(launch_environment().under_mpi_launcher);
  EXPECT_EQ(make_communicator()->name(), "single") << "no launcher: one process, MPI or not";
  ::setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  ::setenv("OMPI_COMM_WORLD_RANK", "2", 1);
  const LaunchEnvironment env = launch_environment();
  EXPECT_TRUE(env.under_mpi_launcher);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.rank, 2);
  if (!built_with_mpi()) {
    // Four processes each training alone on the whole corpus would be wrong silently.
    try {
      make_communicator();
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("rank 2 of 4, but this hrmbench was built without MPI"),
                std::string::npos)
          << e.what();
    }
  }
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("OMPI_COMM_WORLD_RANK");
}

TEST(Dist, ThreadCommunicatorSumsInRankOrder) {
  // The test communicator the trainer tests below rely on.
  on_ranks(3, [](Communicator& c) {
    std::vector<float> f = {static_cast<float>(c.rank() + 1), 0.5f};
    std::vector<int64_t> i = {int64_t{1} << (10 * c.rank())};
    std::vector<double> d(1, c.rank() == 0 ? 1.0 : 1e-16);
    c.all_reduce_sum(std::span<float>(f));
    c.all_reduce_sum(std::span<int64_t>(i));
    c.all_reduce_sum(std::span<double>(d));
    EXPECT_EQ(f, (std::vector<float>{6.f, 1.5f}));
    EXPECT_EQ(i[0], 1 + (1 << 10) + (1 << 20));
    EXPECT_EQ(d[0], (1.0 + 1e-16) + 1e-16);  // (r0 + r1) + r2, the same bits everywhere
    std::vector<uint64_t> u = {static_cast<uint64_t>(c.rank() * 10 + 3)};
    broadcast_values(c, std::span<uint64_t>(u), 1);
    EXPECT_EQ(u[0], 13u);
  });
}

TEST(Dist, GlobalNormalisationGivesTheUnionGradient) {
  // Two ranks' batches of one multipack step, each with its gradient divided by the step's GLOBAL
  // loss-token count, add up to the gradient one process computes on the union of the two batches
  // (its own token mean) — up to the order of the fp32 sums over rows. With each rank's own count
  // (the mistake this guards against) they do not.
  const ModelConfig cfg = shape_config("tiny", 256);
  const TrainCorpus corpus = random_corpus(40, 3);
  PackerOptions po{.batch_tokens = 64, .seed = 2, .world_size = 2};
  Packer p0(corpus, po);
  po.rank = 1;
  Packer p1(corpus, po);
  const PackedBatch b0 = p0.next(), b1 = p1.next();
  ASSERT_GT(b0.size(), 0);
  ASSERT_GT(b1.size(), 0);
  ASSERT_NE(b0.loss_tokens(), b1.loss_tokens())
      << "pick batches whose counts differ, or the test is blind";
  const PackedBatch both = concat_batches(b0, b1);
  const int64_t n = both.loss_tokens();
  ASSERT_EQ(n, b0.loss_tokens() + b1.loss_tokens());
  const ModelWeights w = init_weights(cfg, 4);
  const int64_t bp = BackpropPlan::full(cfg);  // every tensor gets a gradient

  ModelWeights g_union = zeros_like(w), g0 = zeros_like(w), g1 = zeros_like(w), l0 = zeros_like(w),
               l1 = zeros_like(w);
  const LossResult ru = cpu_forward_backward(cfg, w, both, bp, &g_union);
  const LossResult r0 = cpu_forward_backward(cfg, w, b0, bp, &g0, n);
  const LossResult r1 = cpu_forward_backward(cfg, w, b1, bp, &g1, n);
  cpu_forward_backward(cfg, w, b0, bp, &l0);  // normalised by the local counts
  cpu_forward_backward(cfg, w, b1, bp, &l1);
  EXPECT_EQ(r0.loss_tokens + r1.loss_tokens, ru.loss_tokens);
  EXPECT_NEAR((r0.loss_sum + r1.loss_sum) / static_cast<double>(n), ru.loss, 1e-6 * ru.loss);
  EXPECT_EQ(r0.correct + r1.correct, ru.correct);

  // Tolerance: 1e-5 of the tensor's largest entry. The per-row gradients are the same computation;
  // only the sums over rows (weight gradients) are associated differently (fp32, ~100 rows).
  constexpr double kTol = 1e-5;
  std::vector<NamedTensor> tu = trainable_tensors(g_union), t0 = trainable_tensors(g0),
                           t1 = trainable_tensors(g1), s0 = trainable_tensors(l0),
                           s1 = trainable_tensors(l1);
  double worst = 0, worst_local = 0;
  for (size_t i = 0; i < tu.size(); ++i) {
    double scale = 0, diff = 0, diff_local = 0;
    for (size_t j = 0; j < tu[i].data->size(); ++j) {
      const double want = (*tu[i].data)[j];
      scale = std::max(scale, std::abs(want));
      diff =
          std::max(diff, std::abs(static_cast<double>((*t0[i].data)[j] + (*t1[i].data)[j]) - want));
      diff_local = std::max(
          diff_local, std::abs(static_cast<double>((*s0[i].data)[j] + (*s1[i].data)[j]) - want));
    }
    ASSERT_GT(scale, 0) << tu[i].name;
    EXPECT_LE(diff, kTol * scale) << tu[i].name;
    worst = std::max(worst, diff / scale);
    worst_local = std::max(worst_local, diff_local / scale);
  }
  std::printf(
      "union gradient vs sum of globally normalised rank gradients: worst %.3g of the tensor's max "
      "(locally normalised: %.3g)\n",
      worst, worst_local);
  EXPECT_GT(worst_local, 100 * kTol) << "local normalisation should be visibly wrong";
}

TEST(Dist, TwoRanksEqualOneProcessAccumulatingTwo) {
  // The trainer on two ranks (threads) against one process with accumulate = 2: the same global
  // batches, the same normaliser, and the gradient sum g0 + g1 formed the same way, so every step's
  // statistics and the final weights, Adam moments and EMA are equal bit for bit — on both ranks.
  // Rank 1 starts from other weights on purpose: rank 0's are broadcast. Six steps cross an epoch
  // boundary whose last step leaves rank 1 an empty batch.
  const ModelConfig cfg = shape_config("tiny", 256);
  const TrainCorpus corpus = random_corpus(17, 3);  // rank 1's batches: 43, 8, 48, 0, 48, 0 tokens
  TrainOptions o = small_options();
  {  // the case of an empty batch is covered
    Packer p(corpus, {.batch_tokens = o.batch_tokens, .seed = o.seed, .world_size = 2, .rank = 1});
    int empty = 0;
    for (int64_t s = 0; s < o.steps; ++s) empty += p.next().size() == 0;
    ASSERT_GE(empty, 1) << "choose a corpus whose epoch ends with a one-sample step";
  }
  TrainOptions acc = o;
  acc.accumulate = 2;
  const RunResult one = run(cfg, corpus, acc, 5);
  std::vector<RunResult> ranks(2);
  on_ranks(2, [&](Communicator& c) { ranks[c.rank()] = run(cfg, corpus, o, 5 + c.rank(), &c); });
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(ranks[r].stats.size(), one.stats.size());
    for (size_t i = 0; i < one.stats.size(); ++i) {
      const StepStats &a = ranks[r].stats[i], &b = one.stats[i];
      EXPECT_EQ(a.loss, b.loss) << "rank " << r << " step " << b.step;
      EXPECT_EQ(a.accuracy, b.accuracy) << "rank " << r << " step " << b.step;
      EXPECT_EQ(a.tokens, b.tokens) << "rank " << r << " step " << b.step;
      EXPECT_EQ(a.loss_tokens, b.loss_tokens) << "rank " << r << " step " << b.step;
      EXPECT_EQ(a.epoch, b.epoch) << "rank " << r << " step " << b.step;
    }
    ASSERT_EQ(ranks[r].tensors.size(), one.tensors.size());
    for (size_t i = 0; i < one.tensors.size(); ++i)
      EXPECT_EQ(ranks[r].tensors[i], one.tensors[i]) << "rank " << r << " tensor " << i;
  }
  EXPECT_GT(one.stats.back().epoch, 0) << "the run should cross an epoch";
}

TEST(Dist, FourBatchesAgreeUpToSummationOrder) {
  // Two ranks × accumulate 2 against one process × accumulate 4: the same four batches per step,
  // summed (g0 + g1) + (g2 + g3) instead of ((g0 + g1) + g2) + g3. Token counts and the first
  // step's loss are exact; the rest agrees up to fp32 rounding carried through six Adam-atan2 steps
  // (measured 9e-7 of each tensor's largest entry; tolerance 1e-5). Near-zero gradient entries are
  // where this could grow: Adam-atan2's first update is ±lr·π/4 whatever the gradient's size, so a
  // sign flipped by rounding moves a weight by ~lr, i.e. ~4e-3 here; it does not happen in this
  // deterministic case.
  const ModelConfig cfg = shape_config("tiny", 256);
  const TrainCorpus corpus = random_corpus(40, 7);
  TrainOptions o = small_options();
  o.accumulate = 2;
  std::vector<RunResult> ranks(2);
  on_ranks(2, [&](Communicator& c) { ranks[c.rank()] = run(cfg, corpus, o, 5, &c); });
  o.accumulate = 4;
  const RunResult one = run(cfg, corpus, o, 5);
  ASSERT_EQ(ranks[0].stats.size(), one.stats.size());
  EXPECT_EQ(ranks[0].stats[0].loss, one.stats[0].loss);
  double worst_loss = 0;
  for (size_t i = 0; i < one.stats.size(); ++i) {
    EXPECT_EQ(ranks[0].stats[i].tokens, one.stats[i].tokens);
    EXPECT_EQ(ranks[0].stats[i].loss_tokens, one.stats[i].loss_tokens);
    worst_loss = std::max(worst_loss,
                          std::abs(ranks[0].stats[i].loss - one.stats[i].loss) / one.stats[i].loss);
  }
  for (size_t i = 0; i < one.tensors.size(); ++i)
    EXPECT_EQ(ranks[0].tensors[i], ranks[1].tensors[i]) << i;
  const double worst = max_relative_difference(ranks[0], one);
  std::printf(
      "2 ranks x 2 vs 1 x 4 micro-batches, 6 steps: loss rel. diff %.3g, weights/moments %.3g\n",
      worst_loss, worst);
  EXPECT_LE(worst_loss, 1e-6);
  EXPECT_LE(worst, 1e-5);
}

TEST(Dist, ReplicasThatDisagreeAreRejected) {
  // Ranks started with different options (here the seed, which moves the data order) must not
  // train.
  const ModelConfig cfg = shape_config("tiny", 256);
  const TrainCorpus corpus = random_corpus(20, 2);
  std::vector<std::string> errors(2);
  on_ranks(2, [&](Communicator& c) {
    TrainOptions o = small_options();
    o.seed += static_cast<uint64_t>(c.rank());
    try {
      Trainer t(cfg, init_weights(cfg, 5), corpus, o, make_cpu_train_backend(), &c);
    } catch (const Error& e) {
      errors[c.rank()] = e.what();
    }
  });
  for (int r = 0; r < 2; ++r)
    EXPECT_NE(errors[r].find("1 of 2 ranks hold a training state"), std::string::npos)
        << "rank " << r << ": " << errors[r];
}

TEST(Dist, ResumeKeepsTheNumberOfBatchesPerStep) {
  // A checkpoint of one process × accumulate 2 resumes on two ranks (each reads it) and continues
  // exactly as the uninterrupted run; with another world × accumulate it is refused.
  const ModelConfig cfg = shape_config("tiny", 256);
  const TrainCorpus corpus = random_corpus(30, 5);
  TrainOptions o = small_options();
  o.accumulate = 2;
  const RunResult straight = run(cfg, corpus, o, 3);
  const fs::path dir =
      fs::temp_directory_path() / ("hrm_dist_resume_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  {
    Trainer t(cfg, init_weights(cfg, 3), corpus, o, make_cpu_train_backend());
    t.step();
    t.step();
    t.save_checkpoint(dir);
  }
  TrainOptions keep;
  keep.steps = 0;
  keep.accumulate = 1;
  try {
    Trainer::resume(dir, corpus, keep, make_cpu_train_backend());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("split into 2 batches"), std::string::npos) << e.what();
  }
  std::vector<RunResult> ranks(2);
  on_ranks(2, [&](Communicator& c) {
    Trainer t = Trainer::resume(dir, corpus, keep, make_cpu_train_backend(), &c);
    EXPECT_EQ(t.step_count(), 2);
    std::vector<StepStats> stats;
    while (t.step_count() < o.steps) stats.push_back(t.step());
    ranks[c.rank()] = finish(t, std::move(stats));
  });
  for (const RunResult& r : ranks) {
    ASSERT_EQ(r.stats.size(), 4u);
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r.stats[i].loss, straight.stats[i + 2].loss) << i;
    for (size_t i = 0; i < straight.tensors.size(); ++i)
      EXPECT_EQ(r.tensors[i], straight.tensors[i]) << i;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hrm
