#!/usr/bin/env bash
# The GPU benchmarks, on a bare offline GPU machine, from the kit bench/gpu_kit.sh builds.
#
#   bash bench/gpu_suite.sh unpack   # with .devkit/part2 present: JRE and Kafka jars into $KIT
#   bash bench/gpu_suite.sh run      # with .devkit/part1 present: install, then the benchmarks
#
# `run` runs one part of the benchmarks, each one call of at most 10 minutes:
#   GPU_SUITE_PART=1 (default)  the real stack, one worker: detector-only pipeline against the
#                               bare model (1 and 2 batches in flight), the pipeline with every
#                               monitor, capture to trusted outcome (issue 7): limits 470 s;
#   GPU_SUITE_PART=2            four workers sharing the card; the bare sweep (batch 1 to 256,
#                               fp32 and fp16); where a new batch size's seconds go; the
#                               monitors' serial cost on the card: limits 455 s;
#   GPU_SUITE_PART=3            the detector-only pipeline against the bare model at worker
#                               batches of 8, 32, 128 and 256 in fp16, and 64 in fp32 (issue
#                               4 asks for batch 1 to 256; below 8 a GPU batch is padded to
#                               8): limits 330 s.
# The real-stack steps need `unpack` on the same machine first.  Each writes Markdown to $OUT;
# a step that runs out is reported as exit 124 and the next one starts.  Limits allow for
# what the second H200 run measured: a worker is ready 21 to 25 s after its start.
# GPU_SUITE_DEVICE=cpu and GPU_SUITE_FRAMES=N run the same steps small on a CPU machine.
# GPU_SUITE_ONLY="first_batch pipeline_none" runs the steps named instead of a part, and
# GPU_SUITE_LIMIT_<step>=S gives a step S seconds instead of its own limit.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-suite-out}
KIT=${GPU_SUITE_KIT:-$HOME/secmlops-kit}
PY=${GPU_SUITE_PYTHON:-python3}
DEVICE=${GPU_SUITE_DEVICE:-cuda}
FRAMES=${GPU_SUITE_FRAMES:-3000}
case "${GPU_SUITE_PART:-1}" in
  1) PART_STEPS="pipeline_none pipeline_all gate" ;;
  2) PART_STEPS="gate_workers4 gpu_detector first_batch monitor_cost" ;;
  3) PART_STEPS="pipeline_batches pipeline_fp32" ;;
  *) echo "GPU_SUITE_PART must be 1, 2 or 3" >&2; exit 2 ;;
esac
ONLY=${GPU_SUITE_ONLY:-$PART_STEPS}
mkdir -p "$OUT" "$KIT/cache"
export PYTHONUNBUFFERED=1 SECMLOPS_CACHE_DIR="$KIT/cache"

step() {  # step NAME TIMEOUT_S COMMAND...: run, keep stdout in $OUT/NAME.md, say how it ended
  local name=$1 limit=$2 override="GPU_SUITE_LIMIT_$1"; shift 2
  limit=${!override:-$limit}
  case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name ($(date +%T))"
  timeout "$limit" "$@" > "$OUT/$name.md" 2> "$OUT/$name.log"
  echo "== $name exit $? ($(date +%T))"; cat "$OUT/$name.md"; tail -5 "$OUT/$name.log"
}

case "${1:-}" in
  unpack)
    tar -xJf .devkit/part2/jre.tar.xz -C "$KIT" && cp -r .devkit/part2/cache/kafka-* "$KIT/cache/"
    "$KIT/jre/bin/java" -version 2>&1 | head -1
    nvidia-smi -L 2>/dev/null; $PY -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())'
    ;;
  run)
    if [ "$PY" = python3 ]; then
      $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .devkit/part1/wheels/*.whl || exit 1
      export PYTHONPATH=/tmp/site
    fi
    cp -r .devkit/part1/cache/assets "$KIT/cache/"
    export PATH="$PWD/.devkit/part1/bin:$PATH" SECMLOPS_JAVA="$KIT/jre/bin/java"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    began=$(date +%s)
    batches=1,8,32,64,128,256; [ "$DEVICE" = cpu ] && batches=1,8
    if [ -x "$KIT/jre/bin/java" ]; then
      # Detector only, with 1 and 2 batches in flight side by side (the default is 2).
      step pipeline_none 110 $PY bench/detector.py --device "$DEVICE" --models ssdlite \
        --frames "$FRAMES" --repeats 1 --preload --batch 64 --monitors none --in-flight 1,2
      step pipeline_all 120 $PY bench/detector.py --device "$DEVICE" --models ssdlite \
        --frames "$FRAMES" --repeats 1 --preload --batch 64 --monitors all
      # The same at other worker batch sizes, and in fp32 (issue 4's sweep, in the pipeline).
      step pipeline_batches 240 $PY bench/detector.py --device "$DEVICE" --models ssdlite \
        --frames "$FRAMES" --repeats 1 --preload --batch 8,32,128,256 --monitors none
      step pipeline_fp32 90 $PY bench/detector.py --device "$DEVICE" --models ssdlite \
        --frames "$FRAMES" --repeats 1 --preload --batch 64 --precision fp32 --monitors none
      # Capture to trusted outcome, gate and monitors on and off (issue 7's GPU figures).
      # Only the two configurations issue 7's targets name: 4 worker starts, not 8.  A
      # backlog of 6,000 frames: at 2,000 frames/s, 3 s, long enough for the CPU table.
      step gate 240 $PY bench/gate.py --device "$DEVICE" --batch 64 --size 640x360 \
        --frames $((FRAMES < 6000 ? FRAMES : 6000)) --latency-frames 150 --fps 30 --repeats 1 \
        --configs detector,full
      # The same with four worker processes sharing the card (one per camera partition).
      step gate_workers4 260 $PY bench/gate.py --device "$DEVICE" --batch 64 --size 640x360 \
        --frames $((FRAMES < 8000 ? FRAMES : 8000)) --latency-frames 150 --fps 30 --repeats 1 \
        --configs detector,full --workers 4
    else
      echo "no Java runtime in $KIT: run 'unpack' first on this machine for the real-stack steps"
    fi
    step gpu_detector 75 $PY bench/gpu_detector.py --device "$DEVICE" --seconds 1.0 --batches $batches
    step first_batch 60 $PY bench/gpu_first_batch.py --device "$DEVICE"
    step monitor_cost 60 $PY bench/monitor_cost.py --device "$DEVICE" --detectors ssdlite \
      --frames $((FRAMES < 512 ? FRAMES : 512)) --batch 64 --repeats 1
    echo "== benchmarks took $(( $(date +%s) - began )) s (install not counted)"
    ;;
  *) echo "usage: $0 unpack|run" >&2; exit 2 ;;
esac
