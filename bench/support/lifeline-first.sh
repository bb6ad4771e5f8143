#!/usr/bin/env bash
# Runs a bench command while every thread of its Lifeline gateways, workers and embedded nodes
# runs at nice -10, ahead of the bench's own model and readers: what the loop probe then still
# reports as a stall is not time the kernel gave another process. Needs root (a negative nice).
#
#   bench/support/lifeline-first.sh node --import tsx bench/peers.ts --workloads fast-closed-1000 --systems distributed
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 <command> [args...]" >&2; exit 2; }
"$@" &
bench=$!
while kill -0 "$bench" 2>/dev/null; do
  for pid in $(pgrep -f "lifeline(\.ts)? (worker|gateway|start)$" || true); do
    for task in /proc/"$pid"/task/*; do renice -n -10 -p "${task##*/}" >/dev/null 2>&1 || true; done
  done
  sleep 0.2
done
wait "$bench"
