#!/bin/bash
# The strong-budget search benchmark (search_strong.py) at GPU scale, as one device run:
#   bash benchmarks/device/prepare.sh                     # here, once
#   run(command="bash benchmarks/device/strong.sh", carry=[".device"], timeout_s=590)
# On the device machine: builds the cpu table of the 28x28 space there (the latency the search
# budgets is that machine's CPU, ONNX Runtime at one thread), trains the PruningNet and every
# from-scratch run on its GPU (JOBS runs at a time), and copies report.json, the table's info and
# the log to $OUT. Every step resumes; whatever the time allowed comes back. The settings are
# variables (RES=14 PN_EPOCHS=1 ... runs it on a CPU as a check of the script).
set -uo pipefail
cd "$(dirname "$0")/../.."
RES=${RES:-28} PN_EPOCHS=${PN_EPOCHS:-8} EPOCHS=${EPOCHS:-8} SEEDS=${SEEDS:-10} FULL_SEEDS=${FULL_SEEDS:-2}
BUDGETS=${BUDGETS:-s1.3,s2,f0.35} POP=${POP:-50} GENS=${GENS:-20} JOBS=${JOBS:-8}
TABLE_MIN=${TABLE_MIN:-1.5} LIMIT_S=${LIMIT_S:-560} TRAIN_PER_CLASS=${TRAIN_PER_CLASS:-0} VAL_PER_CLASS=${VAL_PER_CLASS:-300}
W=${WORK:-/tmp/strong}; OUT=${OUT:-$W/out}; mkdir -p "$W" "$OUT"
PY=${PYTHON:-python3}
end=$(( $(date +%s) + LIMIT_S ))
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
log() { echo "== $(date -u +%H:%M:%S) $*"; }
{
  log "start: $(nproc) cores; $($PY -c 'import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no cuda")')"
  $PY -c 'import pydantic' 2>/dev/null || $PY -m pip install --quiet --no-index --find-links .device/wheels pydantic
  $PY benchmarks/reference_time.py
  L=$W/cpu-mbv2-small-$RES.json.gz
  [ -f "$L" ] || $PY -m prune_lut.cli build --device cpu --family mobilenet_v2 --small-input --resolution "$RES" \
      --in-channels 1 --num-classes 10 --time-budget "$TABLE_MIN" --out "$L"
  $PY -m prune_lut.cli lut info "$L" > "$OUT/table-info.txt" 2>&1
  log "table done"
  left=$(( end - $(date +%s) )); [ $left -gt 10 ] || left=10
  timeout $left $PY benchmarks/search_strong.py --data "fashion-mnist:$PWD/.device/fashion-mnist" \
      --resolution "$RES" --lut "$L" --out "$W" --train-per-class "$TRAIN_PER_CLASS" --val-per-class "$VAL_PER_CLASS" --pn-epochs "$PN_EPOCHS" \
      --epochs "$EPOCHS" --seeds "$SEEDS" --full-seeds "$FULL_SEEDS" --budgets "$BUDGETS" --population "$POP" \
      --generations "$GENS" --jobs "$JOBS"
  log "search_strong exit $?"
  $PY benchmarks/reference_time.py
} 2>&1 | tee "$OUT/strong.log"
cp "$W/report.json" "$OUT/" 2>/dev/null
ls "$W" > "$OUT/files.txt"
