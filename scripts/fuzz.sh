#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz with clang and runs each for N seconds (default 15)
# from its seed corpus in tests/fuzz/corpus/<name>/. A crash fails the script and leaves the
# reproducer in build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHRM_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)"
mkdir -p build-fuzz/crashes
shopt -s nullglob
for bin in build-fuzz/fuzz/fuzz_*; do
  name=$(basename "$bin")
  seeds=tests/fuzz/corpus/$name
  work=build-fuzz/corpus/$name
  mkdir -p "$work"
  echo "fuzz: $name for ${secs}s" >&2
  "$bin" -max_total_time="$secs" -artifact_prefix=build-fuzz/crashes/ -print_final_stats=0 \
    "$work" $( [[ -d $seeds ]] && echo "$seeds" ) 2>build-fuzz/$name.log \
    || { tail -40 build-fuzz/$name.log; echo "fuzz: $name found a crash" >&2; exit 1; }
done
echo "fuzz: all targets ran clean" >&2
