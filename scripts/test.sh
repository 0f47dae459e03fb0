#!/usr/bin/env bash
# The README's test command: install missing packages, build (warnings as errors), run every test,
# then build the fuzz targets with clang and give each a short run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
# The CUDA backend is compiled wherever nvcc is (its GPU tests skip without a device).
cuda=OFF
if command -v nvcc > /dev/null || [[ -x /usr/local/cuda/bin/nvcc ]]; then cuda=ON; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHRM_WERROR=ON -DHRM_TESTS=ON -DHRM_CUDA=$cuda
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
if [[ "${HRM_SKIP_FUZZ:-0}" != 1 ]]; then
  bash scripts/fuzz.sh "${HRM_FUZZ_SECONDS:-15}"
fi
