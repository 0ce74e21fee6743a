#!/usr/bin/env bash
# Container lifecycle benchmark: oxrun vs runc vs crun, in one run, with
# hyperfine. Run as root.
#
#   scripts/bench.sh [--runs N] [--warmup N] [--runtimes "oxrun runc crun"]
#                    [--measures "lifecycle run exec create start delete"] [--out DIR]
#
# Measures, for a busybox bundle running /bin/true (linux.cgroupsPath unset):
#   lifecycle  create + start + wait + delete as a shim does it: a small C
#              driver (scripts/bench-lifecycle.c, compiled here) that is a
#              child subreaper and reaps the init itself
#   exec       `exec <id> /bin/true` into a running container (`sleep`)
#   run        `run` in the foreground (exits and deletes when /bin/true exits)
#   create / start / delete   each phase alone, the others done in --prepare
#              by bench-ctl.sh (a created container is started and left to
#              exit before its delete, rather than SIGKILLed)
# Each runtime uses its own container ids: with cgroupsPath unset, runtimes
# name their cgroups after the id, so shared ids would collide.
# then prints a markdown table of medians, stripped binary sizes and the peak
# RSS of `create`. Raw hyperfine JSON goes to --out (default target/bench).
#
# Everything runs in a private mount namespace with /sys/fs/cgroup/unified
# unmounted (crun 1.8 refuses cgroup v1/v2 hybrid hosts), so every runtime sees
# the same host. State roots and the bundle live on a private tmpfs.
# Env: OXRUN=path of the oxrun binary (default target/release/oxrun).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=50
warmup=5
runtimes="oxrun runc crun"
measures="lifecycle run exec create start delete"
outdir="$repo/target/bench"

die() {
    echo "bench: $*" >&2
    exit 1
}
log() { echo "[bench] $*" >&2; }

((EUID == 0)) || die "must run as root"
if [[ -z "${OXRUN_BENCH_IN_NS:-}" ]]; then
    OXRUN_BENCH_IN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi

while (($#)); do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --runtimes) runtimes=$2; shift 2 ;;
    --measures) measures=$2; shift 2 ;;
    --out) outdir=$2; shift 2 ;;
    -h | --help)
        sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done
read -ra rts <<<"$runtimes"
read -ra ms_list <<<"$measures"
((${#rts[@]} > 0)) || die "--runtimes is empty"

declare -A bin
for r in "${rts[@]}"; do
    if [[ $r == oxrun ]]; then
        bin[$r]="${OXRUN:-$repo/target/release/oxrun}"
    else
        bin[$r]="$(command -v "$r" || true)"
    fi
    [[ -x "${bin[$r]}" ]] || die "runtime '$r' not found (${bin[$r]:-not on PATH}); build it or pass --runtimes"
done
for tool in hyperfine jq strip /usr/bin/time cc; do
    command -v "$tool" >/dev/null || die "$tool missing: run scripts/setup.sh"
done

# --- private host view and scratch space -----------------------------------
if mountpoint -q /sys/fs/cgroup/unified; then
    umount /sys/fs/cgroup/unified
fi
tmp="$(mktemp -d /tmp/oxrun-bench.XXXXXX)"
mount -t tmpfs -o size=256m,mode=0700 oxrun-bench "$tmp"
bundle="$tmp/bundle"
prefix="oxbench-$$"
ids=(probe lifecycle run exec create start delete rss)

cleanup() {
    local rc=$? r id d
    trap - EXIT INT TERM
    ((rc == 0)) || log "failed (exit $rc); cleaning up. A failing command can be debugged with hyperfine --show-output."
    for r in "${rts[@]}"; do
        for id in "${ids[@]}"; do
            "${bin[$r]}" --root "$tmp/state/$r" delete -f "$prefix-$r-$id" >/dev/null 2>&1 || true
        done
    done
    # Cgroups left behind (and the plain dirs runtimes make on the tmpfs under
    # the unmounted unified mountpoint).
    while read -r d; do
        if [[ "$(stat -f -c %T "$d")" == tmpfs ]]; then
            rm -rf "$d"
        else
            xargs -r kill -9 <"$d/cgroup.procs" 2>/dev/null || true
            for _ in 1 2 3 4 5; do
                if rmdir "$d" 2>/dev/null; then break; fi
                sleep 0.2
            done
        fi
    done < <(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -depth -type d -name "$prefix-*" 2>/dev/null)
    umount "$tmp" 2>/dev/null || umount -l "$tmp" || true
    rmdir "$tmp" 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- bundle -------------------------------------------------------------------
OXRUN="${bin[oxrun]:-/nonexistent}" bash "$repo/scripts/mkbundle.sh" "$bundle" /bin/true
set_config() { # set_config JQ-FILTER
    jq "$1" "$bundle/config.json" >"$bundle/config.json.new"
    mv "$bundle/config.json.new" "$bundle/config.json"
}
set_config 'del(.linux.cgroupsPath)'

# The multi-step drivers, copied to a path hyperfine -N can split safely.
install -m 0755 "$repo/scripts/bench-ctl.sh" "$tmp/ctl"
cc -O2 -o "$tmp/lifecycle" "$repo/scripts/bench-lifecycle.c"
ctl() { "$tmp/ctl" "${bin[$1]}" "$tmp/state/$1" "$bundle" "$prefix-$1-$2" "$3"; }

probe_all() {
    local r
    for r in "${rts[@]}"; do
        mkdir -p "$tmp/state/$r"
        "${bin[$r]}" --root "$tmp/state/$r" run -b "$bundle" "$prefix-$r-probe" </dev/null ||
            { log "$r cannot run the bundle"; return 1; }
    done
}
if ! probe_all; then
    [[ " ${rts[*]} " == *" crun "* ]] || die "sanity run failed"
    log "retrying with ociVersion 1.0.2-dev (crun 1.8 rejects newer ones)"
    set_config '.ociVersion = "1.0.2-dev"'
    probe_all || die "sanity run failed"
fi
log "bundle: ociVersion $(jq -r .ociVersion "$bundle/config.json"), args $(jq -c .process.args "$bundle/config.json")"
# exec needs a running container: the same bundle running sleep.
cp -a "$bundle" "$tmp/bundle-sleep"
jq '.process.args = ["/bin/sleep", "100000"]' "$bundle/config.json" >"$tmp/bundle-sleep/config.json"

# --- hyperfine ----------------------------------------------------------------
mkdir -p "$outdir"
bench() { # bench MEASURE
    local m=$1 r args=()
    for r in "${rts[@]}"; do
        local R="${bin[$r]}" S="$tmp/state/$r" id="$prefix-$r-$m"
        local ctl="$tmp/ctl $R $S $bundle $id"
        args+=(-n "$r")
        case $m in
        lifecycle) args+=(--prepare "$ctl reset" "$tmp/lifecycle $R $S $bundle $id") ;;
        exec)
            "$tmp/ctl" "$R" "$S" "$tmp/bundle-sleep" "$id" reset
            "$R" --root "$S" run -d -b "$tmp/bundle-sleep" "$id" </dev/null >/dev/null 2>&1
            args+=("$R --root $S exec $id /bin/true")
            ;;
        run) args+=(--prepare "$ctl reset" "$R --root $S run -b $bundle $id") ;;
        create) args+=(--prepare "$ctl reset" "$R --root $S create -b $bundle $id") ;;
        start) args+=(--prepare "$ctl created" "$R --root $S start $id") ;;
        delete) args+=(--prepare "$ctl stopped" "$R --root $S delete $id") ;;
        *) die "unknown measure $m" ;;
        esac
    done
    printf '\n==> %s\n' "$m"
    hyperfine -N --warmup "$warmup" --runs "$runs" --export-json "$outdir/$m.json" "${args[@]}"
    for r in "${rts[@]}"; do
        [[ $m == exec ]] && "${bin[$r]}" --root "$tmp/state/$r" kill "$prefix-$r-$m" KILL >/dev/null 2>&1
        ctl "$r" "$m" reset
    done
}
for m in "${ms_list[@]}"; do bench "$m"; done

# --- size and memory ----------------------------------------------------------
declare -A size rss link
for r in "${rts[@]}"; do
    strip -o "$tmp/stripped" "${bin[$r]}"
    size[$r]=$(stat -c %s "$tmp/stripped")
    if ldd "${bin[$r]}" >/dev/null 2>&1; then link[$r]=dynamic; else link[$r]=static; fi
    samples=()
    for _ in 1 2 3 4 5; do
        ctl "$r" rss reset
        /usr/bin/time -f %M -o "$tmp/rss" "${bin[$r]}" --root "$tmp/state/$r" create -b "$bundle" "$prefix-$r-rss" </dev/null
        samples+=("$(cat "$tmp/rss")")
    done
    ctl "$r" rss reset
    rss[$r]=$(printf '%s\n' "${samples[@]}" | sort -n | sed -n 3p)
done

# --- report ---------------------------------------------------------------------
median_ms() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .median * 1000' "$outdir/$1.json"; }
base=${rts[0]}
{
    printf '\n| measure |'
    for r in "${rts[@]}"; do printf ' %s ms |' "$r"; done
    for r in "${rts[@]:1}"; do printf ' %s/%s |' "$base" "$r"; done
    printf '\n|---|'
    for _ in "${rts[@]}" "${rts[@]:1}"; do printf -- '---:|'; done
    echo
    for m in "${ms_list[@]}"; do
        declare -A ms=()
        for r in "${rts[@]}"; do ms[$r]=$(median_ms "$m" "$r"); done
        printf '| %s |' "$m"
        for r in "${rts[@]}"; do printf ' %.2f |' "${ms[$r]}"; done
        for r in "${rts[@]:1}"; do awk -v a="${ms[$base]}" -v b="${ms[$r]}" 'BEGIN { printf " %.2f |", a / b }'; done
        echo
    done
    echo
    echo "| runtime | stripped size (bytes) | linkage | create peak RSS (KiB, median of 5) |"
    echo "|---|---:|---|---:|"
    for r in "${rts[@]}"; do
        echo "| $r | ${size[$r]} | ${link[$r]} | ${rss[$r]} |"
    done
    echo
    echo "runs=$runs warmup=$warmup, medians; $(nproc) CPUs, kernel $(uname -r)"
} | tee "$outdir/summary.md"
