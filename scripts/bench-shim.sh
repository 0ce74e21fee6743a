#!/usr/bin/env bash
# containerd shim benchmark: our containerd-shim-rust-v2 (oxrun in-process)
# vs containerd's Go shim (io.containerd.runc.v2) with runc and with crun
# (`--runc-binary`), in one run, through a private containerd 1.6. Run as root.
#
#   scripts/bench-shim.sh [--runs N] [--warmup N] [--idle N] [--mib N]
#                         [--scale "1 10 100 500"] [--out DIR]
#
# Measures:
#   ctr run --rm   `ctr run --rm --rootfs <busybox> <id> /bin/true`, end to
#                  end (ctr -> containerd -> shim start -> create/start/wait/
#                  delete -> shim shutdown), hyperfine medians. Each run gets a
#                  fresh id from a tiny sh wrapper (the same for every shim).
#   idle memory    --idle N (default 10) `sleep` containers per shim flavor,
#                  one shim each; RSS and PSS of every shim from
#                  /proc/<pid>/smaps_rollup, mean per shim.
#   throughput     a container writes --mib MiB (default 256) to stdout
#                  (dd, 1 MiB writes):
#                  to a `--log-uri file://` log (`run -d`, timed until the
#                  task is STOPPED; shim CPU from /proc/<shim>/stat), and
#                  through containerd's fifos to ctr (`run --rm`, stdout to
#                  /dev/null)
#   scale          our shim only: --scale N sleeping containers started one
#                  after another, then deleted; per-container start and
#                  delete time and shim RSS/PSS (flat = no per-container
#                  scans)
# Prints a markdown table; raw hyperfine JSON goes to --out (default
# target/bench).
#
# containerd runs in a private mount namespace with a tmpfs on /run and
# /sys/fs/cgroup/unified unmounted (crun 1.8 refuses hybrid hosts), root and
# state on a tmpfs. Env: OXRUN_SHIM (default target/release/containerd-shim-rust-v2).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=30
warmup=3
idle=10
mib=256
scale="1 10 100 500"
outdir="$repo/target/bench"

die() {
    echo "bench-shim: $*" >&2
    exit 1
}
log() { echo "[bench-shim] $*" >&2; }

((EUID == 0)) || die "must run as root"
if [[ -z "${OXRUN_BENCH_IN_NS:-}" ]]; then
    OXRUN_BENCH_IN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
while (($#)); do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --mib) mib=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --out) outdir=$2; shift 2 ;;
    -h | --help)
        sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done
shim="${OXRUN_SHIM:-$repo/target/release/containerd-shim-rust-v2}"
[[ -x $shim ]] || die "$shim missing: cargo build --release"
for tool in hyperfine jq containerd ctr runc crun; do
    command -v "$tool" >/dev/null || die "$tool missing: run scripts/setup.sh"
done

if mountpoint -q /sys/fs/cgroup/unified; then
    umount /sys/fs/cgroup/unified
fi
mount -t tmpfs -o mode=0755 tmpfs /run
tmp="$(mktemp -d /tmp/oxrun-bench-shim.XXXXXX)"
mount -t tmpfs -o size=512m,mode=0700 oxrun-bench-shim "$tmp"
ctd_pid=""
cleanup() {
    set +e
    if [[ -n $ctd_pid ]]; then
        for ns in bench-rust bench-runc bench-crun bench-scale; do
            for id in $(ctr --address "$tmp/c.sock" -n "$ns" task ls -q 2>/dev/null); do
                ctr --address "$tmp/c.sock" -n "$ns" task kill -s KILL "$id" >/dev/null 2>&1
            done
            sleep 0.5
            for id in $(ctr --address "$tmp/c.sock" -n "$ns" container ls -q 2>/dev/null); do
                ctr --address "$tmp/c.sock" -n "$ns" task delete -f "$id" >/dev/null 2>&1
                ctr --address "$tmp/c.sock" -n "$ns" container rm "$id" >/dev/null 2>&1
            done
        done
        kill "$ctd_pid" 2>/dev/null
        wait "$ctd_pid" 2>/dev/null
    fi
    umount -l "$tmp" 2>/dev/null
    rmdir "$tmp" 2>/dev/null
    for ns in bench-rust bench-runc bench-crun bench-scale; do
        for d in /sys/fs/cgroup/*/"$ns"; do rmdir "$d" 2>/dev/null; done
    done
}
trap cleanup EXIT

cat >"$tmp/config.toml" <<TOML
version = 2
root = "$tmp/root"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$tmp/c.sock"
[ttrpc]
  address = "$tmp/c.sock.ttrpc"
TOML
PATH="$(dirname "$shim"):$PATH" containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 100); do
    ctr --address "$tmp/c.sock" version >/dev/null 2>&1 && break
    sleep 0.1
done
ctr --address "$tmp/c.sock" version >/dev/null 2>&1 || die "containerd did not start: $(tail -5 "$tmp/containerd.log")"
OXRUN="${OXRUN:-$repo/target/release/oxrun}" bash "$repo/scripts/mkbundle.sh" "$tmp/bundle" true >/dev/null
rootfs="$tmp/bundle/rootfs"

declare -A rtargs=(
    [rust]="--runtime io.containerd.rust.v2"
    [runc]="--runtime io.containerd.runc.v2 --runc-binary $(command -v runc)"
    [crun]="--runtime io.containerd.runc.v2 --runc-binary $(command -v crun)"
)
flavors=(rust runc crun)
# One run: a fresh id each time.
for f in "${flavors[@]}"; do
    cat >"$tmp/run-$f.sh" <<SH
#!/bin/sh
exec ctr --address $tmp/c.sock -n bench-$f run --rm ${rtargs[$f]} --rootfs $rootfs b\$\$-\$(date +%N) /bin/true
SH
    chmod +x "$tmp/run-$f.sh"
    "$tmp/run-$f.sh" || die "ctr run through $f failed"
done

mkdir -p "$outdir"
log "ctr run --rm /bin/true: $runs runs each"
hf=(hyperfine -N --runs "$runs" --warmup "$warmup" --export-json "$outdir/shim-run.json")
for f in "${flavors[@]}"; do hf+=(-n "$f" "$tmp/run-$f.sh"); done
"${hf[@]}" >&2
declare -A med
for f in "${flavors[@]}"; do
    med[$f]=$(jq -r --arg n "$f" '.results[] | select(.command==$n) | .median * 1000' "$outdir/shim-run.json")
done

log "idle memory: $idle sleeping containers per flavor"
declare -A rss pss
for f in "${flavors[@]}"; do
    for i in $(seq "$idle"); do
        ctr --address "$tmp/c.sock" -n "bench-$f" run -d ${rtargs[$f]} --rootfs "$rootfs" "idle$i" /bin/sleep 100000
    done
    sleep 1
    tot_rss=0 tot_pss=0 n=0
    for p in $(pgrep -f -- "-namespace bench-$f .*-address $tmp/c.sock"); do
        r=$(awk '/^Rss:/{print $2}' "/proc/$p/smaps_rollup")
        s=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup")
        tot_rss=$((tot_rss + r)) tot_pss=$((tot_pss + s)) n=$((n + 1))
    done
    ((n > 0)) || die "no shim processes found for $f"
    rss[$f]=$(awk -v t="$tot_rss" -v n="$n" 'BEGIN{printf "%.2f", t/n/1024}')
    pss[$f]=$(awk -v t="$tot_pss" -v n="$n" 'BEGIN{printf "%.2f", t/n/1024}')
    log "$f: $n shims"
    for i in $(seq "$idle"); do
        ctr --address "$tmp/c.sock" -n "bench-$f" task kill -s KILL "idle$i" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for i in $(seq "$idle"); do
        ctr --address "$tmp/c.sock" -n "bench-$f" task delete "idle$i" >/dev/null 2>&1 || true
        ctr --address "$tmp/c.sock" -n "bench-$f" container rm "idle$i" >/dev/null 2>&1 || true
    done
done

C() { ctr --address "$tmp/c.sock" "$@"; }
now_ms() { date +%s%3N; }
task_status() { C -n "$1" task ls 2>/dev/null | awk -v id="$2" '$1==id {print $3}'; }
wait_stopped() { # NS ID
    local i
    for ((i = 0; i < 100000; i++)); do
        [[ $(task_status "$1" "$2") == STOPPED ]] && return 0
    done
    return 1
}
shim_of() { pgrep -f -- "-namespace $1 .*-address $tmp/c.sock" | head -1; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($14+$15)*1000/hz}' "/proc/$1/stat"; }

log "throughput: $mib MiB of stdout per run"
declare -A tp_file tp_cpu tp_fifo
for f in "${flavors[@]}"; do
    ns="bench-$f"
    rm -f "$tmp/tp.log"
    t0=$(now_ms)
    C -n "$ns" run -d ${rtargs[$f]} --log-uri "file://$tmp/tp.log" --rootfs "$rootfs" tp /bin/sh -c "dd if=/dev/zero bs=1048576 count=$mib 2>/dev/null"
    wait_stopped "$ns" tp || die "$f: throughput task never stopped"
    t1=$(now_ms)
    p=$(shim_of "$ns")
    tp_cpu[$f]=$(cpu_ms "$p")
    got=$(stat -c %s "$tmp/tp.log")
    ((got == mib << 20)) || die "$f: log has $got bytes, want $((mib << 20))"
    tp_file[$f]=$(awk -v m="$mib" -v ms="$((t1 - t0))" 'BEGIN{printf "%.0f", m*1000/ms}')
    C -n "$ns" task delete tp >/dev/null
    C -n "$ns" container rm tp >/dev/null
    rm -f "$tmp/tp.log"
    t0=$(now_ms)
    C -n "$ns" run --rm ${rtargs[$f]} --rootfs "$rootfs" tpf /bin/sh -c "dd if=/dev/zero bs=1048576 count=$mib 2>/dev/null" >/dev/null
    t1=$(now_ms)
    tp_fifo[$f]=$(awk -v m="$mib" -v ms="$((t1 - t0))" 'BEGIN{printf "%.0f", m*1000/ms}')
    log "$f: file:// ${tp_file[$f]} MiB/s (shim CPU ${tp_cpu[$f]} ms), fifo ${tp_fifo[$f]} MiB/s"
done

scale_rows=()
for n in $scale; do
    log "scale: $n containers through our shim"
    t0=$(now_ms)
    for i in $(seq "$n"); do
        C -n bench-scale run -d ${rtargs[rust]} --rootfs "$rootfs" "s$i" /bin/sleep 100000
    done
    t1=$(now_ms)
    tot_rss=0 tot_pss=0
    for p in $(pgrep -f -- "-namespace bench-scale .*-address $tmp/c.sock"); do
        tot_rss=$((tot_rss + $(awk '/^Rss:/{print $2}' "/proc/$p/smaps_rollup")))
        tot_pss=$((tot_pss + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup")))
    done
    for i in $(seq "$n"); do C -n bench-scale task kill -s KILL "s$i"; done
    for i in $(seq "$n"); do wait_stopped bench-scale "s$i"; done
    t2=$(now_ms)
    for i in $(seq "$n"); do
        C -n bench-scale task delete "s$i" >/dev/null
        C -n bench-scale container rm "s$i" >/dev/null
    done
    t3=$(now_ms)
    scale_rows+=("$(awk -v n="$n" -v s="$((t1 - t0))" -v d="$((t3 - t2))" -v r="$tot_rss" -v p="$tot_pss" \
        'BEGIN{printf "| %d | %.1f | %.1f | %.2f | %.2f |", n, s/n, d/n, r/n/1024, p/n/1024}')")
done

size() { stat -c %s "$1" | awk '{printf "%.2f", $1/1048576}'; }
gosh="$(command -v containerd-shim-runc-v2)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
{
echo
echo "| measure | rust shim + oxrun | Go shim + runc | Go shim + crun | rust/runc | rust/crun |"
echo "|---|---:|---:|---:|---:|---:|"
printf '| ctr run --rm /bin/true (ms, median) | %.1f | %.1f | %.1f | %s | %s |\n' \
    "${med[rust]}" "${med[runc]}" "${med[crun]}" "$(ratio "${med[rust]}" "${med[runc]}")" "$(ratio "${med[rust]}" "${med[crun]}")"
printf '| idle shim RSS (MiB, mean of %s) | %s | %s | %s | %s | %s |\n' "$idle" \
    "${rss[rust]}" "${rss[runc]}" "${rss[crun]}" "$(ratio "${rss[rust]}" "${rss[runc]}")" "$(ratio "${rss[rust]}" "${rss[crun]}")"
printf '| idle shim PSS (MiB, mean of %s) | %s | %s | %s | %s | %s |\n' "$idle" \
    "${pss[rust]}" "${pss[runc]}" "${pss[crun]}" "$(ratio "${pss[rust]}" "${pss[runc]}")" "$(ratio "${pss[rust]}" "${pss[crun]}")"
printf '| shim binary (MiB, stripped) | %s | %s | %s | %s | %s |\n' "$(size "$shim")" "$(size "$gosh")" "$(size "$gosh")" \
    "$(ratio "$(size "$shim")" "$(size "$gosh")")" "$(ratio "$(size "$shim")" "$(size "$gosh")")"
printf '| stdout to file:// log (MiB/s) | %s | %s | %s | %s | %s |\n' \
    "${tp_file[rust]}" "${tp_file[runc]}" "${tp_file[crun]}" "$(ratio "${tp_file[rust]}" "${tp_file[runc]}")" "$(ratio "${tp_file[rust]}" "${tp_file[crun]}")"
printf '| shim CPU for it (ms) | %s | %s | %s | | |\n' "${tp_cpu[rust]}" "${tp_cpu[runc]}" "${tp_cpu[crun]}"
printf '| stdout through fifos to ctr (MiB/s) | %s | %s | %s | %s | %s |\n' \
    "${tp_fifo[rust]}" "${tp_fifo[runc]}" "${tp_fifo[crun]}" "$(ratio "${tp_fifo[rust]}" "${tp_fifo[runc]}")" "$(ratio "${tp_fifo[rust]}" "${tp_fifo[crun]}")"
if ((${#scale_rows[@]})); then
    echo
    echo "| containers (our shim) | start ms/container | delete ms/container | shim RSS MiB/container | shim PSS MiB/container |"
    echo "|---:|---:|---:|---:|---:|"
    printf '%s\n' "${scale_rows[@]}"
fi
} | tee "$outdir/shim-summary.md"
