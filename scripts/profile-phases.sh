#!/usr/bin/env bash
# Where `create` spends its time and syscalls, for oxrun, runc and crun on
# the same busybox bundle (/bin/true): the input of docs/performance.md.
# Run as root.
#
#   scripts/profile-phases.sh [--runs N]
#
# 1. Timeline of the runtime process itself (strace -ttt, no -f, so the
#    container's processes run untraced): time to the first clone (spec,
#    cgroup set-up), from the clone to the last cgroup.procs write (process
#    creation and cgroup attach), from there to exit (the container's own
#    set-up -- mounts, pivot_root, devices -- while the runtime waits, plus
#    the state write). Median of --runs (default 5).
# 2. Syscalls of create + init up to execve of the user's program
#    (strace -f -c, the container started afterwards so strace can end).
# strace slows every syscall, so the absolute times are inflated; compare
# the shares and the counts.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
[[ ${1:-} == --runs ]] && runs=$2
((EUID == 0)) || { echo "must run as root" >&2; exit 1; }
if [[ -z "${OXRUN_BENCH_IN_NS:-}" ]]; then
    OXRUN_BENCH_IN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
mountpoint -q /sys/fs/cgroup/unified && umount /sys/fs/cgroup/unified
command -v strace >/dev/null || apt-get install -y -qq strace >/dev/null
tmp="$(mktemp -d /tmp/oxrun-prof.XXXXXX)"
mount -t tmpfs -o size=128m tmpfs "$tmp"
trap 'umount -l "$tmp"; rmdir "$tmp"' EXIT
OXRUN="${OXRUN:-$repo/target/release/oxrun}"
OXRUN="$OXRUN" bash "$repo/scripts/mkbundle.sh" "$tmp/b" /bin/true >/dev/null
jq 'del(.linux.cgroupsPath) | .ociVersion = "1.0.2-dev"' "$tmp/b/config.json" >"$tmp/c" && mv "$tmp/c" "$tmp/b/config.json"

declare -A bin=([oxrun]="$OXRUN" [runc]="$(command -v runc)" [crun]="$(command -v crun)")
echo "| runtime | to first clone (ms) | clone -> last cgroup.procs write (ms) | -> exit: container set-up + state (ms) | total under strace (ms) | syscalls create+init (count) |"
echo "|---|---:|---:|---:|---:|---:|"
for r in oxrun runc crun; do
    R=${bin[$r]} S="$tmp/state-$r"
    mkdir -p "$S"
    rows=()
    for i in $(seq "$runs"); do
        id="p-$r-$i"
        strace -ttt -o "$tmp/t" "$R" --root "$S" create -b "$tmp/b" "$id" </dev/null >/dev/null 2>&1
        rows+=("$(awk '
            NR==1 {t0=$1}
            /clone|fork/ && !c {c=$1}
            /cgroup.procs/ {g=$1}
            {last=$1}
            END {if (!g) g=c; printf "%.3f %.3f %.3f %.3f\n", (c-t0)*1000, (g-c)*1000, (last-g)*1000, (last-t0)*1000}' "$tmp/t")")
        "$R" --root "$S" start "$id" >/dev/null 2>&1 || true
        sleep 0.05
        "$R" --root "$S" delete -f "$id" >/dev/null 2>&1 || true
    done
    med() { printf '%s\n' "${rows[@]}" | awk -v k="$1" '{print $k}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    id="p-$r-count"
    strace -f -c -o "$tmp/c" "$R" --root "$S" create -b "$tmp/b" "$id" </dev/null >/dev/null 2>&1 &
    st=$!
    for _ in $(seq 200); do "$R" --root "$S" state "$id" >/dev/null 2>&1 && break; sleep 0.02; done
    "$R" --root "$S" start "$id" >/dev/null 2>&1 || true
    wait "$st" || true
    calls=$(awk '/total/ {print $4}' "$tmp/c")
    "$R" --root "$S" delete -f "$id" >/dev/null 2>&1 || true
    echo "| $r | $(med 1) | $(med 2) | $(med 3) | $(med 4) | ${calls:-?} |"
done
