#!/usr/bin/env bash
# Model throughput, hrmbench next to its anchor, in one invocation (docs/PERFORMANCE.md, "Model
# throughput"): `hrmbench bench model` and scripts/bench_transformers.py on the very same shape
# (bench model writes the config.json that transformers then loads), then `hrmbench bench replay`
# on the real prompts of the five suites. Prints the machine, the commands and the date with the
# tables, ready to paste. A measuring script, not a test; it needs a built hrmbench and
# transformers with HrmTextForCausalLM.
#
# Settings (environment):
#   HRMBENCH  the binary           (default: build/hrmbench)
#   SHAPE     tiny|b|l|xl          (default: tiny)
#   VOCAB     vocabulary of bench model / transformers (default: 65536, the released size)
#   BATCHES   batch sizes          (default: 1,32; 0 = as many as the KV cache holds, hrmbench only)
#   THREADS   CPU threads for both (default: 1; on a shared machine more threads make the
#             OpenMP-parallel torch side collapse while another process holds a core)
#   LIMIT     replay items per suite; empty = the full replay (default: 4)
#   BACKEND   hrmbench backend     (default: cpu)
#   REPLAY_JSON  also write the replay's numbers as JSON there (default: none)
#
# Example:
#   bash scripts/bench_compare.sh                              # tiny shape on the CPU
#   SHAPE=xl THREADS=0 LIMIT= BACKEND=cuda bash scripts/bench_compare.sh   # a GPU session
set -euo pipefail
cd "$(dirname "$0")/.."

HRMBENCH=${HRMBENCH:-build/hrmbench}
SHAPE=${SHAPE:-tiny}
VOCAB=${VOCAB:-65536}
BATCHES=${BATCHES:-1,32}
THREADS=${THREADS:-1}
LIMIT=${LIMIT-4}
BACKEND=${BACKEND:-cpu}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
REPLAY_JSON=${REPLAY_JSON:-}

[[ -x $HRMBENCH ]] || { echo "bench_compare.sh: $HRMBENCH is not an executable (set HRMBENCH)" >&2; exit 1; }

run() {
  echo
  echo "\$ $*"
  "$@"
}

echo "date     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine  $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
if command -v nvidia-smi > /dev/null; then
  echo "gpu      $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)"
fi
echo "load     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"

thread_arg=()
[[ $THREADS -gt 0 ]] && thread_arg=(--threads "$THREADS")
run "$HRMBENCH" bench model --shape "$SHAPE" --vocab "$VOCAB" --batches "$BATCHES" --backend "$BACKEND" \
  "${thread_arg[@]}" --write-config "$work/config.json"
run python3 scripts/bench_transformers.py --config "$work/config.json" --name "$SHAPE" --batches "${BATCHES//,0/}" \
  "${thread_arg[@]}"
replay_args=()
[[ -n $LIMIT ]] && replay_args+=(--limit "$LIMIT")
[[ -n $REPLAY_JSON ]] && replay_args+=(--json "$REPLAY_JSON")
run "$HRMBENCH" bench replay --shape "$SHAPE" --backend "$BACKEND" "${replay_args[@]}" "${thread_arg[@]}"
echo
echo "load     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the end"
