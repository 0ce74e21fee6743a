#!/bin/bash
# bench-guest.sh - run INSIDE the systemd guest by scripts/bench-systemd.sh
# (cwd: the shared directory): container lifecycles with each runtime's
# systemd cgroup driver (--systemd-cgroup, cgroupsPath
# system.slice:bench:<id>, a memory and a pids limit), N timed iterations
# after 2 warm-up ones, the runtimes taking turns in a rotating order:
#   lifecycle  create + start + wait for /bin/true + delete, driven like a
#              shim (bench-lifecycle, a child subreaper)
#   run        `run` in the foreground (the runtime deletes the container)
# Prints the medians and their ratios to oxrun's (absolute times under TCG
# mean little).
#
# Env: N (default 20), SID (a scripts/systemd-vm/sid-runtimes.sh directory:
#      its runc and crun are benchmarked, and every runtime runs with sid's
#      glibc overlaid on /usr/lib/x86_64-linux-gnu in a private mount
#      namespace), BOOKWORM=1 (also the guest's bookworm runc 1.1.5 and
#      crun 1.8.1, from this directory).
N=${N:-20}
W=2
cd "$(dirname "$0")" || exit 1
here=$PWD
if [ -n "${SID:-}" ] && [ -z "${BENCH_IN_NS:-}" ]; then
    # sid's libraries on top of the guest's, for everyone (glibc is
    # backwards compatible), in a private mount namespace
    mkdir -p /run/sidlib && cp -a "$SID/usr/lib/x86_64-linux-gnu/." /run/sidlib/ || exit 1
    exec env BENCH_IN_NS=1 unshare -m --propagation private sh -c \
        'mount -t overlay overlay -o ro,lowerdir=/run/sidlib:/usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu &&
         exec bash "$0"' "$0"
fi

names=() paths=()
add() { names+=("$1"); paths+=("$2"); }
ver() { "$1" --version 2> /dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1; }
add oxrun "$here/oxrun"
if [ -n "${SID:-}" ]; then
    add "runc-$(ver "$SID/usr/sbin/runc")" "$SID/usr/sbin/runc"
    add "crun-$(ver "$SID/usr/bin/crun")" "$SID/usr/bin/crun"
fi
if [ "${BOOKWORM:-0}" = 1 ] || [ -z "${SID:-}" ]; then
    add "runc-$(ver "$here/runc")" "$here/runc"
    add "crun-$(ver "$here/crun")" "$here/crun"
fi
echo "guest: $(uname -r), $(systemctl --version | head -1), $(/usr/lib/x86_64-linux-gnu/libc.so.6 | head -1 | grep -oE 'GNU C Library.*version [0-9.]+' | sed 's/.*version/glibc/; s/\.$//')"

B=/run/bench
rm -rf $B && mkdir -p $B/rootfs/{bin,proc,dev,tmp}
cp "$here/busybox" $B/rootfs/bin/busybox
ln -s busybox $B/rootfs/bin/true
ln -s busybox $B/rootfs/bin/sh
# config ID: the bundle's config.json for container ID
config() {
    cat > "$1/config.json" << EOF
{
  "ociVersion": "1.0.2",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["true"],
              "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": true},
  "root": {"path": "$B/rootfs", "readonly": true},
  "hostname": "bench",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
  ],
  "linux": {
    "cgroupsPath": "system.slice:bench:$2",
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
    "resources": {"memory": {"limit": 67108864}, "pids": {"limit": 100}}
  }
}
EOF
}
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f\n", (b - a) * 1000}'; }
k=${#names[@]}
ok=()
for j in $(seq 0 $((k - 1))); do
    n=${names[$j]}
    mkdir -p "$B/$n/bundle" "$B/$n/state"
    config "$B/$n/bundle" "probe-$n"
    if ./bench-lifecycle "${paths[$j]}" "$B/$n/state" "$B/$n/bundle" "probe-$n" --systemd-cgroup > "$B/$n/err" 2>&1; then
        ok[$j]=1
        echo "$n: ${paths[$j]} ($("${paths[$j]}" --version 2> /dev/null | head -1))"
    else
        ok[$j]=0
        echo "$n: FAILED, not measured: $(tail -n 3 "$B/$n/err" | tr '\n' ' ')"
    fi
done
t0=$(cut -d' ' -f1 /proc/uptime)
for i in $(seq 1 $((N + W))); do
    for s in $(seq 0 $((k - 1))); do
        j=$(((i + s) % k))
        [ "${ok[$j]}" = 1 ] || continue
        n=${names[$j]} p=${paths[$j]}
        config "$B/$n/bundle" "l$i-$n"
        a=$EPOCHREALTIME
        ./bench-lifecycle "$p" "$B/$n/state" "$B/$n/bundle" "l$i-$n" --systemd-cgroup > /dev/null 2> "$B/$n/err" ||
            { echo "$n: lifecycle $i failed: $(tail -n 3 "$B/$n/err")"; ok[$j]=0; continue; }
        b=$EPOCHREALTIME
        [ "$i" -gt $W ] && ms "$a" "$b" >> "$B/$n/lifecycle"
        config "$B/$n/bundle" "r$i-$n"
        a=$EPOCHREALTIME
        "$p" --root "$B/$n/state" --systemd-cgroup run -b "$B/$n/bundle" "r$i-$n" > /dev/null 2> "$B/$n/err" < /dev/null ||
            { echo "$n: run $i failed: $(tail -n 3 "$B/$n/err")"; ok[$j]=0; continue; }
        b=$EPOCHREALTIME
        [ "$i" -gt $W ] && ms "$a" "$b" >> "$B/$n/run"
    done
done
t1=$(cut -d' ' -f1 /proc/uptime)
median() { sort -n "$1" 2> /dev/null | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
left=$(systemctl list-units --all --plain --no-legend --no-pager | awk '$1 ~ /^bench-.*\.scope$/ {print $1}' | tr '\n' ' ')
echo "$N iterations (+$W warm-up) per runtime, round-robin, $(echo "$t0 $t1" | awk '{printf "%.0f", $2 - $1}') s; scopes left: ${left:-none}"
lo=$(median $B/oxrun/lifecycle)
ro=$(median $B/oxrun/run)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b}'; }
echo
echo "| runtime (--systemd-cgroup) | create+start+wait+delete, median ms | vs oxrun | run (foreground), median ms | vs oxrun |"
echo "|---|---:|---:|---:|---:|"
for j in $(seq 0 $((k - 1))); do
    n=${names[$j]}
    l=$(median "$B/$n/lifecycle")
    r=$(median "$B/$n/run")
    echo "| $n | $l | $(ratio "$l" "$lo") | $r | $(ratio "$r" "$ro") |"
done
