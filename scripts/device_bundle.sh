#!/usr/bin/env bash
# Packs what a GPU session runs into .carry/ (git-ignored), for the device tool's `carry`:
#   .carry/bin/hrmbench, .carry/bin/cuda_tests   built here for sm_90a plus PTX (HRM_CUDA_ARCHS)
#   .carry/lib/                                  the Debian libraries the device's CUDA image lacks
#   .carry/benchmarks.tgz                        ../shared/data/benchmarks (the replay's prompts)
# Then run scripts/device_check.sh there (its header says how). Needs nvcc here.
#
# Example:
#   bash scripts/device_bundle.sh && du -sh .carry
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-device}

# No MPI: one GPU needs none, and the device image has no Open MPI libraries.
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHRM_CUDA=ON -DHRM_MPI=OFF -DHRM_TESTS=ON > /dev/null
cmake --build "$BUILD" -j"$(nproc)" --target hrmbench cuda_tests
rm -rf .carry
mkdir -p .carry/bin .carry/lib
cp "$BUILD"/hrmbench "$BUILD"/tests/cuda_tests .carry/bin/
# Shared libraries from Debian packages; CUDA's own (cudart, cuBLAS) are on the device already.
for bin in .carry/bin/*; do ldd "$bin" | awk '/=> \// {print $3}'; done | sort -u |
  grep -E 'lib(tbb|pcre2|utf8proc|xxhash|gtest|gmock)' | xargs -r -I{} cp -L {} .carry/lib/
tar czf .carry/benchmarks.tgz -C ../shared/data benchmarks
du -sh .carry
