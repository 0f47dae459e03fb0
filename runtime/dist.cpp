// The single-process and MPI communicators, and how a process learns whether an MPI launcher
// started it (see dist.h).
#include "runtime/dist.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string_view>

#include "common/error.h"

#ifndef HRM_HAVE_MPI
#define HRM_HAVE_MPI 0
#endif
#if HRM_HAVE_MPI
// The C API only: Open MPI's and MPICH's deprecated C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace hrm {
namespace {

class SingleProcess final : public Communicator {
 public:
  std::string name() const override { return "single"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  void all_reduce_sum(std::span<float>) override {}
  void all_reduce_sum(std::span<double>) override {}
  void all_reduce_sum(std::span<int64_t>) override {}
  void broadcast(std::span<std::byte>, int root) override {
    HRM_CHECK(root == 0, "broadcast root ", root, " outside a world of 1");
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

// An environment variable as a non-negative integer, or -1 when unset or not a number.
int env_int(const char* name) {
  const char* v = name ? std::getenv(name) : nullptr;
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > std::numeric_limits<int>::max()) return -1;
  return static_cast<int>(x);
}

#if HRM_HAVE_MPI
void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(cat("MPI ", what, " failed: ", std::string_view(msg, static_cast<size_t>(len))));
}

// MPI counts are int: large buffers go in chunks (a 1.2 B-parameter gradient is 1.2e9 floats).
constexpr size_t kMaxMpiCount = static_cast<size_t>(std::numeric_limits<int>::max() / 2);

class Mpi final : public Communicator {
 public:
  Mpi() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    HRM_CHECK(!initialized, "MPI is already initialised: one MPI communicator per process");
    // FUNNELED: only the thread that created the communicator calls MPI; TBB's workers never do.
    int provided = 0;
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &world_), "MPI_Comm_size");
    MPI_Comm node = MPI_COMM_NULL;
    mpi_check(
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
    mpi_check(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank (node)");
    mpi_check(MPI_Comm_size(node, &local_size_), "MPI_Comm_size (node)");
    MPI_Comm_free(&node);
  }
  ~Mpi() override { MPI_Finalize(); }

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  void all_reduce_sum(std::span<float> d) override { reduce(d.data(), d.size(), MPI_FLOAT); }
  void all_reduce_sum(std::span<double> d) override { reduce(d.data(), d.size(), MPI_DOUBLE); }
  void all_reduce_sum(std::span<int64_t> d) override { reduce(d.data(), d.size(), MPI_INT64_T); }
  void broadcast(std::span<std::byte> d, int root) override {
    for (size_t at = 0; at < d.size(); at += kMaxMpiCount) {
      const int n = static_cast<int>(std::min(kMaxMpiCount, d.size() - at));
      mpi_check(MPI_Bcast(d.data() + at, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
  }
  void barrier() override { mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest if it did
  }

 private:
  template <class T>
  void reduce(T* data, size_t n, MPI_Datatype type) {
    for (size_t at = 0; at < n; at += kMaxMpiCount) {
      const int count = static_cast<int>(std::min(kMaxMpiCount, n - at));
      mpi_check(MPI_Allreduce(MPI_IN_PLACE, data + at, count, type, MPI_SUM, MPI_COMM_WORLD),
                "MPI_Allreduce");
    }
  }

  int rank_ = 0, world_ = 1, local_rank_ = 0, local_size_ = 1;
};
#endif

}  // namespace

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcess>();
}

LaunchEnvironment launch_environment() {
  // Open MPI's mpirun and MPICH/Intel MPI's Hydra (PMI) announce the world size and rank in the
  // environment; a PMIx launcher (Slurm's srun --mpi=pmix) at least the rank. (Slurm's SLURM_NTASKS
  // is not a sign: a batch script that runs one hrmbench inside a many-task allocation sets it
  // too.)
  struct Vars {
    const char *size, *rank;
  };
  for (const Vars v : {Vars{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
                       Vars{"PMI_SIZE", "PMI_RANK"}, Vars{nullptr, "PMIX_RANK"}}) {
    const int size = env_int(v.size), rank = env_int(v.rank);
    if (size < 1 && rank < 0) continue;
    return {
        .under_mpi_launcher = true, .world_size = size < 1 ? 1 : size, .rank = rank < 0 ? 0 : rank};
  }
  return {};
}

bool built_with_mpi() { return HRM_HAVE_MPI != 0; }

std::unique_ptr<Communicator> make_communicator() {
  const LaunchEnvironment env = launch_environment();
  if (!env.under_mpi_launcher) return make_single_process_communicator();
#if HRM_HAVE_MPI
  return std::make_unique<Mpi>();
#else
  if (env.world_size > 1)
    throw Error(cat(
        "started by an MPI launcher as rank ", env.rank, " of ", env.world_size,
        ", but this hrmbench was built without MPI: install libopenmpi-dev (scripts/setup.sh) and "
        "rebuild, or run without mpirun"));
  return make_single_process_communicator();
#endif
}

}  // namespace hrm
