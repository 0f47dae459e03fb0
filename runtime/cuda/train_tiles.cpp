// The tile plan of the training attention kernels (train_kernels.h): which 64-row tiles of which
// sequences the grid covers. Plain host code, in a .cpp so that the real CUDA build and the host
// emulation of the launchers (tests/emu/) plan the same tiles.
#include "runtime/cuda/train_kernels.h"

namespace hrm::cuda {

std::vector<TrainTile> train_tiles(std::span<const TrainSeq> seqs) {
  std::vector<TrainTile> tiles;
  for (size_t s = 0; s < seqs.size(); ++s)
    for (int32_t r = 0; r < seqs[s].len; r += kTrainTileRows) tiles.push_back({static_cast<int32_t>(s), r});
  return tiles;
}

}  // namespace hrm::cuda
