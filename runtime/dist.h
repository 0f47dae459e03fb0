// Data-parallel communication: the few collectives a data-parallel trainer needs (sum all-reduce,
// broadcast, barrier), behind one small interface, so that the trainer does not know whether it
// talks to nothing (one process), to MPI (CPU processes on one or several machines) or, later, to
// NCCL.
//
// Implementations:
//   * single process (world 1): every collective is a no-op; what `hrmbench train` uses unless an
//     MPI launcher started it;
//   * MPI (built when CMake finds MPI, HRM_HAVE_MPI): MPI_COMM_WORLD; MPI_Init_thread(FUNNELED) in
//     the constructor, MPI_Finalize in the destructor, so at most one MPI communicator per process;
//     buffers are host memory;
//   * GPUs: the CUDA training backend, which keeps gradients on the GPU, sums them with NCCL
//     (runtime/cuda/nccl_allreduce.h: bootstrapped over this communicator, which broadcasts the
//     ncclUniqueId; one GPU per local_rank()), or, without NCCL, through host memory with this
//     communicator's all_reduce_sum. The trainer's own collectives (token counts, loss, flags) stay
//     here.
//
// Every collective must be called by every rank, in the same order, with the same element counts
// (the MPI rule). After all_reduce_sum every rank holds the same values: with two ranks that is
// a + b exactly; with more, the association of the sum is the library's (fixed for a given library
// and world size, not necessarily rank order). Not for: deciding what a rank trains on (data.h's
// Packer does that from rank and world size), or the training step itself (trainer.h).
//
// Example:
//   // MPI when started by mpirun, else one process.
//   std::unique_ptr<hrm::Communicator> comm = hrm::make_communicator();
//   std::vector<float> grad = ...;
//   comm->all_reduce_sum(std::span<float>(grad));
//   if (comm->rank() == 0) write_checkpoint();
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace hrm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;  // "single", "mpi"
  virtual int rank() const = 0;          // [0, world_size)
  virtual int world_size() const = 0;
  // This rank's place among the ranks on its machine (the GPU a CUDA rank would use) and their
  // count.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  // Whether the buffers passed must be device memory (an NCCL communicator) or host memory (these).
  virtual bool device_memory() const { return false; }

  // Element-wise sum over the ranks, in place: afterwards every rank holds the same sums.
  virtual void all_reduce_sum(std::span<float> data) = 0;
  virtual void all_reduce_sum(std::span<double> data) = 0;
  virtual void all_reduce_sum(std::span<int64_t> data) = 0;
  // `root`'s bytes replace every other rank's.
  virtual void broadcast(std::span<std::byte> data, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with `code` (after an error on one rank, the others may be waiting
  // inside a collective and would never return). A single process just exits.
  [[noreturn]] virtual void abort(int code) = 0;
};

// World 1: collectives are no-ops.
std::unique_ptr<Communicator> make_single_process_communicator();

// The launcher's view of this process: whether an MPI launcher (Open MPI's mpirun/orterun, MPICH's
// Hydra, PMIx/Slurm) started it, and the world size it announced (1 when none did).
struct LaunchEnvironment {
  bool under_mpi_launcher = false;
  int world_size = 1;
  int rank = 0;
};
LaunchEnvironment launch_environment();

// Whether this binary was built with MPI.
bool built_with_mpi();

// MPI when this process was started by an MPI launcher, else a single process. Throws hrm::Error
// when a launcher announces more than one rank but the binary was built without MPI (install
// libopenmpi-dev and rebuild), rather than letting N processes each train alone on the whole
// corpus.
std::unique_ptr<Communicator> make_communicator();

// Broadcast helpers for typed host buffers.
template <class T>
void broadcast_values(Communicator& comm, std::span<T> data, int root) {
  comm.broadcast(std::as_writable_bytes(data), root);
}

}  // namespace hrm
