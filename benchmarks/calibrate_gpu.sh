#!/usr/bin/env bash
# Full calibration on one H100/H200-class GPU in <= 8 minutes, then a comparison with the
# datasheet roofline. One prepared run: no arguments needed, everything lands in $OUT.
#
#   bash benchmarks/calibrate_gpu.sh                    # OUT=runs/calibrate-gpu
#   OUT=/some/dir MODELS=llama-3.1-8b bash benchmarks/calibrate_gpu.sh
#
# Writes $OUT/<gpu>-calibrated.yaml (datasheet numbers of the matching shipped profile plus a
# calibration: section), its Parquet tables in $OUT/<gpu>-calibrated/, calibrate.log (the
# measurement log, environment, MAPE table), compare.txt (measured / datasheet per op kind and
# per iteration) and time.txt. Measurements stop at a 420 s budget (later points are skipped
# and counted in the log); the whole script is cut at 470 s.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-runs/calibrate-gpu}
PY=${PY:-python}
MODELS=${MODELS:-llama-3.1-8b,llama-3.1-70b,qwen2.5-7b,mixtral-8x7b}
mkdir -p "$OUT"
start=$(date +%s)

{
  echo "# $(date -u +%FT%TZ) $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
    --format=csv 2>/dev/null || echo "nvidia-smi not available"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
} | tee "$OUT/calibrate.log"

gpu=$("$PY" -c "import torch; print(torch.cuda.get_device_name().split()[1].lower() \
  if torch.cuda.is_available() else 'none')")
if [ "$gpu" = "none" ]; then
  echo "no CUDA device visible to torch; nothing to calibrate" | tee -a "$OUT/calibrate.log"
  exit 1
fi
profile="$OUT/${gpu}-calibrated.yaml"

# The shipped profile is chosen from the device name (H200 -> h200-sxm, H100 -> h100-sxm, ...);
# set BASE=name to override.
timeout 470 "$PY" -m sim.cli calibrate --device cuda --dtype bf16 --models "$MODELS" \
  ${BASE:+--base "$BASE"} -o "$profile" 2>&1 | tee -a "$OUT/calibrate.log"

"$PY" -m sim.cli hardware show "$profile" --json > "$OUT/hardware-show.json"
"$PY" benchmarks/calibration_compare.py "$profile" 2>&1 | tee "$OUT/compare.txt"

echo "total $(( $(date +%s) - start )) s (target <= 480 s)" | tee "$OUT/time.txt"
