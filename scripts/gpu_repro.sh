#!/usr/bin/env bash
# Reproduce the FFN paper's 2D image-regression table (Tancik et al. 2020) in its own setting on one GPU, and print
# measured beside published (docs/repro.md).
#
#   scripts/gpu_repro.sh [--out DIR]          # GPU: the 32 test images at 512², 2000 steps
#                                             #      (DIR default results/reference/runs/ffn-paper)
#   scripts/gpu_repro.sh --smoke [--out DIR]  # CPU: 2 images per set at 64², 100 steps (DIR default
#                                             #      results/smoke/ffn-paper): checks the path only, NOT the paper's
#                                             #      setting (the table says so in every row)
#
# Steps: (1) a timing probe: PROBE_STEPS steps of every representation on the 16 natural test images, batched, in
# DIR/probe/<precision>; its step times projected to the full run must fit LIMIT_S, else fp32 is retried in bf16
# and then it stops; SIREN, FINER, WIRE and Gauss (not in the FFN paper) join only if they fit too. (2) the fits,
# one batch of 16 images per representation and set, records in DIR/fitting. (3) the comparison, DIR/repro.
#
# Environment: FITBENCH_DATA_ROOT (a folder with ffn/natural_test and ffn/text_test; default ../shared/data),
# PRECISION (auto: fp32, bf16 only if fp32 would not fit; or fp32 / bf16), LIMIT_S (projected fitting seconds,
# default 420: with the probe, start-up, evaluation and PNGs the whole script stays within 10 minutes),
# PROBE_STEPS (30).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)  # --out stays relative to where you run this, as run_bench.py's

FFN=relu_mlp,basic,positional,fourier_features
NOT_IN_FFN=siren,finer,wire,gauss
DATA=${FITBENCH_DATA_ROOT:-$REPO/../shared/data}
SMOKE=false
OUT=
while (($#)); do
  case $1 in
    --smoke) SMOKE=true ;;
    --out) OUT=${2:?--out needs a folder}; shift ;;
    *) echo "error: unknown argument $1; use [--smoke] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
if $SMOKE; then
  OUT=${OUT:-$REPO/results/smoke/ffn-paper}
  DEVICE=cpu
  PROBE_STEPS=${PROBE_STEPS:-3}
  SCALE=(--size 64 --max-images 2)
  STEPS=(--steps 100)
  LIMIT_S=${LIMIT_S:-1000000}  # a 64² probe projects nothing about the GPU run: the path is what is checked
else
  OUT=${OUT:-$REPO/results/reference/runs/ffn-paper}
  DEVICE=cuda
  PROBE_STEPS=${PROBE_STEPS:-30}
  SCALE=()
  STEPS=()
  LIMIT_S=${LIMIT_S:-420}
fi
for kind in natural_test text_test; do
  [[ -d "$DATA/ffn/$kind" ]] || { echo "error: $DATA/ffn/$kind is missing; set FITBENCH_DATA_ROOT to the folder" \
    "that holds ffn/natural_test and ffn/text_test" >&2; exit 2; }
done

bench() { python "$REPO/run_bench.py" "$@"; }  # repro reads records: no device or data flags
fit() { bench fitting --data-root "$DATA" --device "$DEVICE" --preset paper --batch on "${SCALE[@]}" "$@"; }

# (1) Where the time goes, before spending it.
probe() {  # probe PRECISION: exit 0 when the four FFN mappings fit LIMIT_S
  # A failed probe fit (say, one of the others out of memory) is not fatal: the projection refuses to project it.
  fit --images ffn-natural-test --reps "$FFN,$NOT_IN_FFN" --steps "$PROBE_STEPS" --precision "$1" \
    --out "$OUT/probe/$1" > "$OUT/probe/$1.log" 2>&1 || echo "note: some probe fits failed, see $OUT/probe/$1.log"
  echo "== projection, $1, the FFN paper's four mappings:"
  bench repro --reps "$FFN" --project-within "$LIMIT_S" --out "$OUT/probe/$1"
}
mkdir -p "$OUT/probe"
case ${PRECISION:-auto} in
  auto) if probe fp32; then PRECISION=fp32; elif probe bf16; then PRECISION=bf16; else
          echo "stopped: the projected run does not fit $LIMIT_S s even in bf16" >&2; exit 3; fi ;;
  fp32|bf16) probe "$PRECISION" || { echo "stopped: the projected run does not fit $LIMIT_S s" >&2; exit 3; } ;;
  *) echo "error: PRECISION must be auto, fp32 or bf16, not $PRECISION" >&2; exit 2 ;;
esac
echo "== projection, $PRECISION, with $NOT_IN_FFN (not in the FFN paper):"
if bench repro --reps "$FFN,$NOT_IN_FFN" --project-within "$LIMIT_S" --out "$OUT/probe/$PRECISION"; then
  REPS=$FFN,$NOT_IN_FFN
else
  REPS=$FFN
  echo "running the FFN paper's four mappings only"
fi

# (2) The fits: each set with its own FFN settings (sigma, s, no-mapping lr; the paper preset picks them by set).
for set in ffn-natural-test ffn-text-test; do
  SECONDS=0
  fit --images "$set" --reps "$REPS" --precision "$PRECISION" "${STEPS[@]}" --out "$OUT" ||
    echo "warning: some fits of $set failed (their records say why); the table shows the rest" >&2
  echo "== $set fitted in $SECONDS s"
done

# (3) Measured beside published.
bench repro --out "$OUT"
