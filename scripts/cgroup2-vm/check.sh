#!/bin/sh
# check.sh - pure cgroup v2 checks of oxrun, run INSIDE the guest by
# scripts/test-cgroup2.sh (busybox ash; cwd is the shared dir holding the
# oxrun binary). Containers get memory/cpu/pids/io/unified limits read back
# from the v2 files, the eBPF device filter, pause/resume through
# cgroup.freeze, update, events (stats and an OOM kill seen in
# memory.events), ps, and delete removing the cgroup. Prints one line per
# check and finally "N passed, N failed"; exits 1 if anything failed.

OX=${OXRUN:-$PWD/oxrun}
ROOT=/run/oxrun-cg2
CG=/sys/fs/cgroup
BASE=/oxcg2
WORK=/tmp/cg2
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $*"; }
nok() { fail=$((fail + 1)); echo "FAIL $*"; }
# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then ok "$1 = $3"; else nok "$1: expected '$2', got '$3'"; fi
}
# contains NAME NEEDLE TEXT
contains() {
    case "$3" in
    *"$2"*) ok "$1" ;;
    *) nok "$1: '$2' not in: $3" ;;
    esac
}
ox() { "$OX" --root "$ROOT" "$@"; }
cgf() { cat "$CG$BASE/$1/$2" 2>&1 | tr '\n' ' ' | sed 's/ *$//'; }
# wait_for FILE NEEDLE: up to 20 s
wait_for() {
    i=0
    while [ $i -lt 200 ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

echo "guest: $(uname -r), $(grep -c ' cgroup ' /proc/mounts) v1 and $(grep -c ' cgroup2 ' /proc/mounts) v2 cgroup mounts, controllers: $(cat $CG/cgroup.controllers)"
[ -x "$OX" ] || { echo "no oxrun at $OX"; echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$WORK" "$ROOT"

# One busybox rootfs for every bundle.
RFS=$WORK/rootfs
mkdir -p "$RFS/bin" "$RFS/proc" "$RFS/sys" "$RFS/dev" "$RFS/tmp" "$RFS/etc"
cp /bin/busybox "$RFS/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$RFS/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' > "$RFS/etc/passwd"

# bundle ID SCRIPT RESOURCES [LINUX_EXTRA]: $WORK/ID/config.json. SCRIPT
# must not contain double quotes or backslashes.
bundle() {
    mkdir -p "$WORK/$1"
    cat > "$WORK/$1/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false, "user": {"uid": 0, "gid": 0},
    "args": ["sh", "-c", "$2"],
    "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": true
  },
  "root": {"path": "$RFS", "readonly": true},
  "hostname": "cg2",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid", "nodev", "noexec"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "nodev", "noexec"]}
  ],
  "linux": {
    "cgroupsPath": "$BASE/$1",
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
    "resources": $3
    ${4:+, $4}
  }
}
EOF
}
# run ID: detached, output in $WORK/ID/out
run() { ox run -d --bundle "$WORK/$1" "$1" > "$WORK/$1/out" 2>&1; }
gone() {
    if [ -e "$CG$BASE/$1" ]; then nok "$1: cgroup left after delete"; else ok "$1: cgroup removed"; fi
}
DENY='{"allow": false, "access": "rwm"}'

t0=$(cut -d' ' -f1 /proc/uptime)

# --- limits read back -------------------------------------------------------
bundle lim 'cat /sys/fs/cgroup/memory.max; echo ready; exec sleep 1000' \
    "{\"devices\": [$DENY],
      \"memory\": {\"limit\": 67108864, \"reservation\": 33554432, \"swap\": 100663296},
      \"cpu\": {\"shares\": 1024, \"quota\": 50000, \"period\": 100000, \"cpus\": \"0\", \"mems\": \"0\"},
      \"pids\": {\"limit\": 20},
      \"blockIO\": {\"weight\": 500},
      \"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 4194304}],
      \"unified\": {\"memory.high\": \"60000000\"}}"
if run lim && wait_for "$WORK/lim/out" ready; then
    ok "lim: container with limits runs"
    check "lim: memory.max" 67108864 "$(cgf lim memory.max)"
    check "lim: memory.low" 33554432 "$(cgf lim memory.low)"
    check "lim: memory.swap.max (swap - limit)" 33554432 "$(cgf lim memory.swap.max)"
    check "lim: memory.high (unified)" 59998208 "$(cgf lim memory.high)"
    check "lim: cpu.weight (shares 1024)" 39 "$(cgf lim cpu.weight)"
    check "lim: cpu.max" "50000 100000" "$(cgf lim cpu.max)"
    check "lim: cpuset.cpus" 0 "$(cgf lim cpuset.cpus)"
    check "lim: pids.max" 20 "$(cgf lim pids.max)"
    if [ -e "$CG$BASE/lim/io.bfq.weight" ]; then
        check "lim: io.bfq.weight" "default 500" "$(cgf lim io.bfq.weight)"
    elif [ -e "$CG$BASE/lim/io.weight" ]; then
        check "lim: io.weight (blkio 500)" "default 4950" "$(cgf lim io.weight)"
    fi
    check "lim: hugetlb.2MB.max" 4194304 "$(cgf lim hugetlb.2MB.max)"
    check "lim: memory.max seen inside" 67108864 "$(head -1 "$WORK/lim/out")"

    # update
    if ox update --memory 128M --memory-swap 160M --pids-limit 50 --cpu-quota 20000 --cpu-shares 2048 lim; then
        ok "update: accepted"
        check "update: memory.max" 134217728 "$(cgf lim memory.max)"
        check "update: memory.swap.max" 33554432 "$(cgf lim memory.swap.max)"
        check "update: pids.max" 50 "$(cgf lim pids.max)"
        check "update: cpu.max" "20000 100000" "$(cgf lim cpu.max)"
        check "update: cpu.weight" 79 "$(cgf lim cpu.weight)"
        check "update: memory.low kept" 33554432 "$(cgf lim memory.low)"
    else
        nok "update: refused"
    fi
    ox update --pids-limit -1 lim && check "update: pids.max unlimited" max "$(cgf lim pids.max)" ||
        nok "update: --pids-limit -1 refused"
    out=$(ox update --cpuset-cpus 0-63 lim 2>&1) && nok "update: impossible cpuset accepted" ||
        contains "update: impossible cpuset names the field" "linux.resources.cpu.cpus" "$out"

    # stats, ps
    stats=$(ox events --stats lim 2>&1)
    contains "events --stats: type" '"type":"stats"' "$stats"
    contains "events --stats: memory limit" '"limit":134217728' "$stats"
    contains "events --stats: pids" '"pids":{"current":1}' "$stats"
    pid=$(ox state lim | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
    check "ps --format json" "[$pid]" "$(ox ps --format json lim)"
    contains "ps table" "sleep 1000" "$(ox ps lim)"

    # pause / resume
    if ox pause lim; then
        check "pause: cgroup.freeze" 1 "$(cgf lim cgroup.freeze)"
        contains "pause: cgroup.events" "frozen 1" "$(cgf lim cgroup.events)"
        contains "pause: state" '"status": "paused"' "$(ox state lim)"
        ox resume lim && ok "resume: accepted" || nok "resume: refused"
        contains "resume: cgroup.events" "frozen 0" "$(cgf lim cgroup.events)"
        contains "resume: state" '"status": "running"' "$(ox state lim)"
    else
        nok "pause: refused"
    fi
    ox delete -f lim && ok "lim: deleted" || nok "lim: delete failed"
    gone lim
else
    nok "lim: container did not start: $(cat "$WORK/lim/out")"
    ox delete -f lim > /dev/null 2>&1
fi

# --- paused processes do not run ---------------------------------------------
bundle tick 'i=0; while true; do i=$((i+1)); echo tick=$i; sleep 0.1; done' "{\"devices\": [$DENY]}"
if run tick && wait_for "$WORK/tick/out" tick=2; then
    ox pause tick
    n1=$(grep -c tick "$WORK/tick/out")
    sleep 1
    n2=$(grep -c tick "$WORK/tick/out")
    check "pause: no output while frozen" "$n1" "$n2"
    ox resume tick
    sleep 1
    n3=$(grep -c tick "$WORK/tick/out")
    if [ "$n3" -gt "$n2" ]; then ok "resume: runs again ($n2 -> $n3)"; else nok "resume: still stopped ($n3)"; fi
    ox pause tick
    ox delete -f tick && ok "tick: paused container force-deleted" || nok "tick: delete -f of a paused container"
    gone tick
else
    nok "tick: did not start: $(cat "$WORK/tick/out")"
    ox delete -f tick > /dev/null 2>&1
fi

# --- eBPF device filter ---------------------------------------------------------
# xkmsg (1:11) gets a write-only rule (a write-only open of kmsg needs no
# capability), xloop (10:237) none, xnull (1:3) is a default device.
bundle dev 'for t in kmsg-w:/dev/xkmsg:w kmsg-rw:/dev/xkmsg:rw loop:/dev/xloop:r null:/dev/xnull:rw; do n=${t%%:*}; f=${t#*:}; m=${f#*:}; f=${f%:*}; case $m in r) (: < $f) 2>/tmp/e ;; w) (: > $f) 2>/tmp/e ;; *) (: <> $f) 2>/tmp/e ;; esac && echo $n=open || { grep -q permitted /tmp/e && echo $n=EPERM || echo $n=$(cat /tmp/e); }; done; echo done; exec sleep 1000' \
    "{\"devices\": [$DENY, {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 11, \"access\": \"w\"}]}" \
    '"devices": [{"path": "/dev/xkmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 438},
                {"path": "/dev/xloop", "type": "c", "major": 10, "minor": 237, "fileMode": 438},
                {"path": "/dev/xnull", "type": "c", "major": 1, "minor": 3, "fileMode": 438}]'
if run dev && wait_for "$WORK/dev/out" done; then
    out=$(cat "$WORK/dev/out")
    contains "devices: allowed write (rule c 1:11 w)" "kmsg-w=open" "$out"
    contains "devices: read+write beyond the rule denied" "kmsg-rw=EPERM" "$out"
    contains "devices: device without a rule denied" "loop=EPERM" "$out"
    contains "devices: default /dev/null allowed" "null=open" "$out"
    ox delete -f dev > /dev/null 2>&1
    gone dev
else
    nok "dev: did not start: $(cat "$WORK/dev/out")"
    ox delete -f dev > /dev/null 2>&1
fi

# --- OOM kill reported by events ------------------------------------------------
bundle oom 'echo ready; sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd-exit=$?; exec sleep 1000' \
    "{\"devices\": [$DENY], \"memory\": {\"limit\": 16777216, \"swap\": 16777216}}"
if run oom && wait_for "$WORK/oom/out" ready; then
    ox events --interval 500ms oom > "$WORK/oom/events" 2>&1 &
    evpid=$!
    wait_for "$WORK/oom/out" dd-exit
    check "oom: dd was killed" "dd-exit=137" "$(grep dd-exit "$WORK/oom/out")"
    contains "oom: memory.events oom_kill" "oom_kill 1" "$(cgf oom memory.events)"
    wait_for "$WORK/oom/events" '"type":"oom"' && ok "oom: events reported it" ||
        nok "oom: no oom event: $(cat "$WORK/oom/events")"
    contains "oom: events streams stats" '"type":"stats"' "$(cat "$WORK/oom/events")"
    ox kill oom KILL
    i=0
    while kill -0 $evpid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 $evpid 2>/dev/null; then nok "oom: events still running after stop"; kill $evpid; else ok "oom: events exited when the container stopped"; fi
    ox delete -f oom > /dev/null 2>&1
    gone oom
else
    nok "oom: did not start: $(cat "$WORK/oom/out")"
    ox delete -f oom > /dev/null 2>&1
fi

# --- bad input: error names the field, nothing is left ---------------------------
refused() { # refused ID RESOURCES NEEDLE
    bundle "$1" 'exec sleep 1000' "$2"
    out=$(ox create --bundle "$WORK/$1" "$1" 2>&1 < /dev/null) && {
        nok "$1: accepted"
        ox delete -f "$1" > /dev/null 2>&1
    } || contains "$1: error names the field" "$3" "$out"
    if [ -e "$CG$BASE/$1" ] || [ -e "$ROOT/$1" ]; then nok "$1: left state or cgroup behind"; else ok "$1: nothing left"; fi
}
refused badkey '{"unified": {"memory.bogus": "1"}}' 'linux.resources.unified["memory.bogus"]'
refused badswap '{"memory": {"limit": 67108864, "swap": 33554432}}' 'linux.resources.memory.swap'
refused badmem '{"memory": {"limit": -7}}' 'linux.resources.memory.limit'
refused swaponly '{"memory": {"swap": 33554432}}' 'linux.resources.memory.swap'
refused badcpus '{"cpu": {"cpus": "5-9"}}' 'linux.resources.cpu.cpus'

rmdir "$CG$BASE" 2>/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
echo "checks took $(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}') s (guest time)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
