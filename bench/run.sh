#!/usr/bin/env bash
# Every benchmark, one after another; each prints its own figures. `make bench` runs this.
# They measure this machine as it is: run them when nothing else is busy.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
for bench in ingest writer alert_latency evaluate regression dashboard guard size replicas; do
  echo "== bench/bench_$bench.py"
  $PY "bench/bench_$bench.py"
  echo
done
