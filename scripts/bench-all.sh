#!/usr/bin/env bash
# Every performance figure in one table: scripts/bench.sh (oxrun vs runc vs
# crun: lifecycle, run, exec, phases, size, create RSS) and
# scripts/bench-shim.sh (our shim + oxrun vs the Go shim with runc and with
# crun: ctr run --rm, idle memory, binary size, stdout throughput, scale).
# Run as root; takes a few minutes.
#
#   scripts/bench-all.sh [--runs N] [--scale "1 10 100 500"]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=30
scale="1 10 100 500"
while (($#)); do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--scale LIST]" >&2; exit 2 ;;
    esac
done
out="$repo/target/bench"
mkdir -p "$out"
bash "$repo/scripts/bench.sh" --runs "$runs" --warmup 3 --out "$out" >"$out/runtime.log" 2>&1 ||
    { tail -20 "$out/runtime.log"; exit 1; }
bash "$repo/scripts/bench-shim.sh" --runs "$runs" --warmup 3 --scale "$scale" --out "$out" >"$out/shim.log" 2>&1 ||
    { tail -20 "$out/shim.log"; exit 1; }

rows() { grep -E '^\| [a-z`]' "$1" | grep -vE '^\| (measure|runtime|containers) '; }
{
    echo "| measure | oxrun (+ our shim) | runc (+ Go shim) | crun (+ Go shim) | ours/runc | ours/crun |"
    echo "|---|---:|---:|---:|---:|---:|"
    rows "$out/summary.md" | grep -vE '^\| (oxrun|runc|crun) \|' | sed -E 's/^\| ([a-z]+) \|/| \1 (ms, median) |/'
    # binary size and create RSS, one row each
    awk -F'|' '/^\| (oxrun|runc|crun) \|/ {gsub(/ /,"",$2); s[$2]=$3; r[$2]=$5}
        END {
            printf "| runtime binary (MiB, stripped) | %.2f | %.2f | %.2f | %.2f | %.2f |\n", s["oxrun"]/1048576, s["runc"]/1048576, s["crun"]/1048576, s["oxrun"]/s["runc"], s["oxrun"]/s["crun"];
            printf "| create peak RSS (MiB) | %.2f | %.2f | %.2f | %.2f | %.2f |\n", r["oxrun"]/1024, r["runc"]/1024, r["crun"]/1024, r["oxrun"]/r["runc"], r["oxrun"]/r["crun"]
        }' "$out/summary.md"
    rows "$out/shim-summary.md" | grep -v '^| [0-9]'
    echo
    grep -A100 '^| containers' "$out/shim-summary.md"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r), runs=$runs; ratios < 1 are better except for throughput (MiB/s), where > 1 is better."
} | tee "$out/all.md"
