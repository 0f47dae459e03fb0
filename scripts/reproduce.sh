#!/usr/bin/env bash
# Small-scale reproduction: evidence that the training recipe (DESIGN §6, docs/TRAINING.md) learns.
# It makes a synthetic arithmetic task with a held-out test split (`hrmbench make-task`), trains on it
# with periodic checkpoints (`hrmbench train`), evaluates several checkpoints with the real harness
# (`hrmbench run --suites gsm8k`: exact match of the boxed answer) and draws the loss curve with the
# accuracies (`scripts/repro_report.py`). The CPU run of docs/TRAINING.md "Small-scale reproduction"
# is this script with its defaults; on a GPU machine the same script scales up, e.g.
#   SHAPE=b BACKEND=cuda STEPS=20000 BATCH_TOKENS=16384 DIFFICULTY=3 scripts/reproduce.sh repro_b
#
# Usage: scripts/reproduce.sh [OUT]        (default OUT=repro; an existing OUT is refused)
# Relative paths given (OUT, HRMBENCH, CONFIG, TOKENIZER) are taken from the caller's directory; the
# defaults are inside the repository.
# Settings (environment variables, defaults in brackets):
#   HRMBENCH        the binary [build-repro/hrmbench, else build/hrmbench, else hrmbench on PATH]
#   SHAPE           tiny | b | l | xl [tiny];  CONFIG=config.json instead of SHAPE
#   BACKEND         cpu | cuda [cpu]: given to `run`, and to `train` when it has --backend
#   TOKENIZER       [tests/fixtures/tokenizer/tokenizer.json]
#   DIFFICULTY      1..3 [2]   TRAIN_N [20000]   TEST_N [300]   SEED [1]
#   STEPS [1500]    BATCH_TOKENS [2048]   LR [2e-3]   WARMUP [STEPS/20]   EMA [0.99]
#   EVAL_EVERY      export and evaluate every N steps [STEPS/6]; the last step is always evaluated
#   THREADS         CPU threads for training [all]    MAX_NEW_TOKENS  evaluation cap [96]
# Everything else is the recipe's default (Adam-atan2 betas 0.9/0.95, weight decay 0.1, constant LR
# after warm-up, bp_steps 2 -> 5 after 20% of the steps, multipack packing).
#
# Checkpoints: the trainer exports its EMA weights every EVAL_EVERY steps and at the end
# (`train --export-every`, OUT/train/exports/step_N), and each export is evaluated once training ends.
# The last one is checked to be byte-identical to the trainer's final export, OUT/train/hf.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
from_caller() { [[ -z $1 || $1 == /* ]] && echo "$1" || echo "$caller/$1"; }

OUT=$(from_caller "${1:-repro}")
if [[ -n ${HRMBENCH:-} ]]; then
  [[ $HRMBENCH == */* ]] && HRMBENCH=$(from_caller "$HRMBENCH") || HRMBENCH=$(command -v "$HRMBENCH" || true)
else
  for b in build-repro/hrmbench build/hrmbench; do [[ -x $b ]] && HRMBENCH=$b && break; done
  HRMBENCH=${HRMBENCH:-$(command -v hrmbench || true)}
fi
[[ -x ${HRMBENCH:-} ]] || { echo "reproduce.sh: no hrmbench binary (build it, or set HRMBENCH)" >&2; exit 1; }
SHAPE=${SHAPE:-tiny}
CONFIG=$(from_caller "${CONFIG:-}")
BACKEND=${BACKEND:-cpu}
TOKENIZER=${TOKENIZER:+$(from_caller "$TOKENIZER")}
TOKENIZER=${TOKENIZER:-tests/fixtures/tokenizer/tokenizer.json}
DIFFICULTY=${DIFFICULTY:-2}
TRAIN_N=${TRAIN_N:-20000}
TEST_N=${TEST_N:-300}
SEED=${SEED:-1}
STEPS=${STEPS:-1500}
BATCH_TOKENS=${BATCH_TOKENS:-2048}
LR=${LR:-2e-3}
WARMUP=${WARMUP:-$((STEPS / 20 > 0 ? STEPS / 20 : 1))}
EMA=${EMA:-0.99}
EVAL_EVERY=${EVAL_EVERY:-$((STEPS / 6 > 0 ? STEPS / 6 : 1))}
THREADS=${THREADS:-}
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-96}

[[ -e $OUT ]] && { echo "reproduce.sh: $OUT exists; remove it or name another output directory" >&2; exit 1; }
mkdir -p "$OUT/eval"
OUT=$(cd "$OUT" && pwd)
: > "$OUT/timings.txt"
stage_start=$SECONDS
stage_done() {  # NAME: records the wall time since the previous stage
  echo "$1 $((SECONDS - stage_start))" >> "$OUT/timings.txt"
  stage_start=$SECONDS
}
log() { printf '\n== %s\n' "$*" >&2; }

model_args=(--shape "$SHAPE")
[[ -n $CONFIG ]] && model_args=(--config "$CONFIG")
thread_args=()
[[ -n $THREADS ]] && thread_args=(--threads "$THREADS")
train_backend=()
if "$HRMBENCH" train --help 2>&1 | grep -q -- '--backend'; then
  train_backend=(--backend "$BACKEND")
elif [[ $BACKEND != cpu ]]; then
  echo "reproduce.sh: this hrmbench's train has no --backend yet: training runs on the CPU," \
       "evaluation on $BACKEND" >&2
fi
{
  echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "host $(uname -n), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"
  echo "binary $HRMBENCH (built $(date -u -r "$HRMBENCH" +%Y-%m-%dT%H:%M:%SZ))"
  for v in SHAPE CONFIG BACKEND TOKENIZER DIFFICULTY TRAIN_N TEST_N SEED STEPS BATCH_TOKENS LR WARMUP EMA \
           EVAL_EVERY THREADS MAX_NEW_TOKENS; do echo "$v ${!v}"; done
} > "$OUT/settings.txt"

log "1/4 synthetic task: training split and held-out test split"
"$HRMBENCH" make-task --out "$OUT/task" --train "$TRAIN_N" --test "$TEST_N" --difficulty "$DIFFICULTY" \
  --seed "$SEED"
stage_done task

log "2/4 training: $STEPS steps of $BATCH_TOKENS tokens, EMA weights exported every $EVAL_EVERY"
train_cmd=("$HRMBENCH" train --data "$OUT/task/corpus.jsonl" --tokenizer "$TOKENIZER" --out "$OUT/train"
  "${model_args[@]}" --steps "$STEPS" --batch-tokens "$BATCH_TOKENS" --lr "$LR" --warmup "$WARMUP"
  --ema "$EMA" --seed "$SEED" --export-every "$EVAL_EVERY" --log-every 25
  "${thread_args[@]}" "${train_backend[@]}")
echo "\$ ${train_cmd[*]}" >&2
"${train_cmd[@]}"
stage_done train

log "3/4 evaluating the checkpoints on the held-out split (hrmbench run --suites gsm8k)"
eval_one() {  # STEP MODEL_DIR
  "$HRMBENCH" run --model "$2" --data "$OUT/task/data" --suites gsm8k --max-new-tokens "$MAX_NEW_TOKENS" \
    --backend "$BACKEND" --out "$OUT/eval/step_$1" --quiet 2>&1 >/dev/null | grep -v 'rows, the official split has' >&2 || true
  [[ -f $OUT/eval/step_$1/results.json ]] || { echo "reproduce.sh: evaluation of step $1 failed" >&2; exit 1; }
  sed -n 's/^ *"acc,none": \(.*\),$/  step '"$1"': exact match \1/p' "$OUT/eval/step_$1/results.json" >&2
}
for step in $(find "$OUT/train/exports" -maxdepth 1 -name 'step_*' -printf '%f\n' | sed 's/^step_//' | sort -n); do
  if [[ $step == "$STEPS" ]] && ! cmp -s "$OUT/train/exports/step_$step/model.safetensors" "$OUT/train/hf/model.safetensors"; then
    echo "reproduce.sh: the last periodic export differs from the trainer's final one" >&2
    exit 1
  fi
  eval_one "$step" "$OUT/train/exports/step_$step"
done
stage_done eval

log "4/4 loss curve and summary"
python3 scripts/repro_report.py "$OUT" --title "HRM-Text $([[ -n $CONFIG ]] && basename "$CONFIG" || echo "$SHAPE") on the difficulty-$DIFFICULTY synthetic task ($BACKEND)"
stage_done report

cat >&2 <<EOF

reproduction finished; results in $OUT:
  summary      $OUT/summary.md  (numbers: $OUT/summary.json)
  loss curve   $OUT/loss.svg
  training     $OUT/train/loss.jsonl, final EMA weights $OUT/train/hf
  evaluations  $OUT/eval/step_N/results.json and samples/gsm8k.jsonl (every generation)
  settings     $OUT/settings.txt, stage times $OUT/timings.txt
EOF
