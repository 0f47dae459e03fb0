#!/usr/bin/env bash
# The README's main job: install missing packages, build hrmbench, run `hrmbench demo` (synthetic
# corpus with a planted leak → CPU training → evaluation → contamination scan → HTML reports).
# No GPU, no downloads. Extra arguments go to `hrmbench demo` (e.g. --steps 80 --out mydemo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The demo runs on the CPU: its own build without the CUDA backend and the tests builds fastest.
cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DHRM_TESTS=OFF -DHRM_CUDA=OFF >/dev/null
cmake --build build-demo -j"$(nproc)" --target hrmbench
./build-demo/hrmbench demo "$@"
