#!/usr/bin/env bash
# The GPU checks and measurements of the CUDA backend, run ON the device machine from the bundle
# scripts/device_bundle.sh made here. Each step writes its full log under $OUT; a summary comes last.
#
# Steps (STEPS, comma-separated; default all):
#   tests      cuda_tests: op table vs the CPU ops, model vs CPU and transformers fixtures, engine
#   sanitizer  compute-sanitizer memcheck on the op and model tests, racecheck on the attention ones
#   bench      hrmbench bench model --backend cuda (SHAPE, batches 1, 32 and the most that fit) with
#              scripts/bench_transformers.py on the same shape, and the fp8 KV cache
#   replay     hrmbench bench replay --backend cuda over all five suites (LIMIT items each; empty = all)
#   train      hrmbench bench train --backend cuda (SHAPE; bp 2 and 5, MFU against 989 TFLOP/s), then a
#              short tiny-shape `train --backend cuda` whose export transformers must load and continue
#              like hrmbench (scripts/check_hf_export.py; the CUDA gradient tests are in `tests`)
#   repro      scripts/reproduce.sh on the GPU: REPRO_SHAPE (b), REPRO_STEPS (1200) x 16384 tokens,
#              difficulty 3; loss curve and held-out exact match under $OUT/repro
#
# Example (device tool; one step per call keeps each under the 10-minute limit):
#   run(command="STEPS=tests bash scripts/device_check.sh", carry=[".carry"])
#   run(command="STEPS=bench SHAPE=xl bash scripts/device_check.sh", carry=[".carry"])
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/device}
STEPS=${STEPS:-tests,sanitizer,bench,replay,train}
SHAPE=${SHAPE:-xl}
LIMIT=${LIMIT-}
BIN=$PWD/.carry/bin
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export HRM_SOURCE_DIR=$PWD HRM_FIXTURES=$PWD/tests/fixtures HRM_SHARED=/tmp/hrm-shared HRM_BINARY=$BIN/hrmbench
mkdir -p /tmp/hrm-shared/data
[[ -d /tmp/hrm-shared/data/benchmarks ]] || tar xzf .carry/benchmarks.tgz -C /tmp/hrm-shared/data
summary=()
has() { [[ ",$STEPS," == *",$1,"* ]]; }
note() { summary+=("$*"); echo "== $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

if has tests; then
  "$BIN"/cuda_tests --gtest_output=json:"$OUT/cuda_tests.json" > "$OUT/cuda_tests.txt" 2>&1
  note "tests: exit $?; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/cuda_tests.txt" | tr '\n' ' ')"
  grep -E '^\[  FAILED|^\[ cuda' "$OUT/cuda_tests.txt" | head -40
fi

if has sanitizer; then
  compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN"/cuda_tests \
    --gtest_filter='CudaOps*:Fixtures/*:CudaModel.*:Shapes/CudaRagged.*/0:CudaTrain*' > "$OUT/memcheck.txt" 2>&1
  note "memcheck: exit $?; $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.txt" | tail -1)"
  compute-sanitizer --tool racecheck --error-exitcode 9 "$BIN"/cuda_tests \
    --gtest_filter='CudaOps*Attention*:CudaTrainOps.Attention*' > "$OUT/racecheck.txt" 2>&1
  note "racecheck: exit $?; $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/racecheck.txt" | tail -1)"
fi

if has bench; then
  {
    echo "date $(date -u '+%Y-%m-%d %H:%M UTC'); gpu $(cat "$OUT/gpu.txt")"
    echo "\$ hrmbench bench model --backend cuda --shape $SHAPE --batches 1,32,0 --decode-steps 64"
    "$BIN"/hrmbench bench model --backend cuda --shape "$SHAPE" --batches 1,32,0 --decode-steps 64 \
      --write-config "$OUT/config.json" 2>&1
    echo "\$ hrmbench bench model --backend cuda --fp8-kv --shape $SHAPE --batches 32,0 --decode-steps 64"
    "$BIN"/hrmbench bench model --backend cuda --fp8-kv --shape "$SHAPE" --batches 32,0 --decode-steps 64 2>&1
    echo "\$ hrmbench bench model --backend cuda --shape $SHAPE --batches 64 --prompt-len 512 --decode-steps 1"
    "$BIN"/hrmbench bench model --backend cuda --shape "$SHAPE" --batches 64 --prompt-len 512 --decode-steps 1 2>&1
    echo "\$ hrmbench bench model --backend cuda --shape $SHAPE --batches 1,32 --decode-steps 16 --profile"
    "$BIN"/hrmbench bench model --backend cuda --shape "$SHAPE" --batches 1,32 --decode-steps 16 --profile 2>&1
    echo "\$ python3 scripts/bench_transformers.py --config config.json --batches 1,32 --decode-steps 64"
    python3 scripts/bench_transformers.py --config "$OUT/config.json" --name "$SHAPE" --batches 1,32 \
      --decode-steps 64 2>&1
  } > "$OUT/bench.md"
  note "bench: see bench.md"
  grep -E '^\||^\$' "$OUT/bench.md"
fi

if has replay; then
  limit=()
  [[ -n $LIMIT ]] && limit=(--limit "$LIMIT")
  "$BIN"/hrmbench bench replay --backend cuda --shape "$SHAPE" --max-batch 256 "${limit[@]}" \
    --data /tmp/hrm-shared/data/benchmarks --tokenizer tests/fixtures/tokenizer/tokenizer.json --vocab 65536 \
    --json "$OUT/replay.json" > "$OUT/replay.md" 2> "$OUT/replay.err"
  note "replay: exit $?"
  cat "$OUT/replay.md"
  tail -3 "$OUT/replay.err"
fi

if has train; then
  {
    echo "date $(date -u '+%Y-%m-%d %H:%M UTC'); gpu $(cat "$OUT/gpu.txt")"
    for bp in 5 2; do
      echo "\$ hrmbench bench train --backend cuda --shape $SHAPE --batch-tokens 12288 --sample-tokens 1024 --bp-steps $bp --steps 3 --peak-tflops 989"
      "$BIN"/hrmbench bench train --backend cuda --shape "$SHAPE" --batch-tokens 12288 --sample-tokens 1024 \
        --bp-steps "$bp" --steps 3 --peak-tflops 989 --write-config "$OUT/train_config.json" 2>&1
    done
    echo "\$ python3 scripts/bench_train_transformers.py --config train_config.json --batch-tokens 12288 --sample-tokens 1024 --bp-steps 5 --peak-tflops 989"
    python3 scripts/bench_train_transformers.py --config "$OUT/train_config.json" --name "$SHAPE" --batch-tokens 12288 \
      --sample-tokens 1024 --bp-steps 5 --steps 3 --peak-tflops 989 2>&1 | tail -4
  } > "$OUT/train_bench.md"
  note "train bench: see train_bench.md"
  grep -E '^\||^\$' "$OUT/train_bench.md"
  tok=tests/fixtures/tokenizer/tokenizer.json
  {
    "$BIN"/hrmbench make-corpus --out /tmp/corpus.jsonl --n 2000 --seed 1 &&
      "$BIN"/hrmbench train --backend cuda --data /tmp/corpus.jsonl --tokenizer "$tok" --out "$OUT/train_run" \
        --steps 60 --batch-tokens 2048 --lr 2e-3 --warmup 10 --log-every 10 &&
      "$BIN"/hrmbench train --data /tmp/corpus.jsonl --tokenizer "$tok" --out /tmp/train_run_cpu \
        --steps 60 --batch-tokens 2048 --lr 2e-3 --warmup 10 --log-every 10 &&
      python3 scripts/check_hf_export.py --model "$OUT/train_run/hf" --hrmbench "$BIN"/hrmbench
  } > "$OUT/train_run.txt" 2>&1
  note "train run + export check: exit $?"
  cp /tmp/train_run_cpu/loss.jsonl "$OUT/train_run/loss_cpu.jsonl" 2>/dev/null
  grep -E 'step (10|30|60)/|OK|FAIL|same|DIFFERENT' "$OUT/train_run.txt" | tail -12
fi

if has repro; then
  HRMBENCH="$BIN"/hrmbench SHAPE=${REPRO_SHAPE:-b} BACKEND=cuda STEPS=${REPRO_STEPS:-1200} BATCH_TOKENS=16384 \
    DIFFICULTY=3 bash scripts/reproduce.sh "$OUT/repro" > "$OUT/repro.txt" 2>&1
  note "repro: exit $?"
  tail -20 "$OUT/repro.txt"
fi

echo
printf '%s\n' "${summary[@]}"
