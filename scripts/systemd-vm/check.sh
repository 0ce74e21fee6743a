#!/bin/bash
# check.sh - the systemd cgroup driver checks, run INSIDE the systemd guest
# (scripts/systemd-vm: systemd as PID 1, pure cgroup v2, system D-Bus) by
# scripts/test-systemd.sh, against one runtime with --systemd-cgroup:
#
#   RUNTIME=/path/to/oxrun ./check.sh      (or RUNTIME=/usr/sbin/runc: the reference)
#
# Containers whose cgroupsPath is systemd's "slice:prefix:name" must live in
# the transient scope <prefix>-<name>.scope of that slice (nested slices
# expanded), with the limits readable from the scope's cgroup files, from
# `systemctl show` and from inside the container (cgroup namespace);
# update, pause/resume, events (stats, an OOM kill), exec, ps, kill and
# delete must work, and delete must leave no unit and no cgroup. Bad input
# (malformed cgroupsPath, a slice with a '/', an invalid unit name, systemd
# or its bus unreachable) must fail with a clear error and leave nothing
# behind. One line per check ("ok ..." / "FAIL ..."), then "N passed, N failed";
# exit status 1 if anything failed.
#
# Env: RUNTIME (default ./oxrun), BUSYBOX (static busybox for the container
#      rootfs; default ./busybox, else /bin/busybox).
RT=${RUNTIME:-$PWD/oxrun}
NAME=$(basename "$RT")
BUSYBOX=${BUSYBOX:-$PWD/busybox}
[ -x "$BUSYBOX" ] || BUSYBOX=/bin/busybox
ROOT=/run/sdcheck-$NAME
WORK=/tmp/sdcheck-$NAME
CG=/sys/fs/cgroup
# ok, nok, check, contains, rt, ref, one, show, wait_for, status, bundle, run
. "$(dirname "$0")/checklib.sh"
# bundles get a cgroup namespace: the container sees its own scope's files
CGROUPNS=1
# wait_status ID STATUS: up to 10 s
wait_status() {
    local i=0
    while [ $i -lt 100 ]; do
        [ "$(status "$1")" = "$2" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# units whose name mentions ID (systemctl list-units --all)
units_of() { systemctl list-units --all --plain --no-legend --no-pager 2> /dev/null | grep -F -- "$1"; }
# cgroup directories whose name mentions ID
cgroups_of() { find $CG -name "*$1*" -type d 2> /dev/null; }

# gone ID SCOPE_DIR: after delete, no unit, no cgroup, no state
gone() {
    local left
    left=$(units_of "$1")
    [ -z "$left" ] && ok "$1: no unit after delete" || nok "$1: unit left after delete: $left"
    [ -e "$2" ] && nok "$1: cgroup $2 left after delete" || ok "$1: cgroup removed"
    [ -e "$ROOT/$1" ] && nok "$1: state $ROOT/$1 left after delete" || ok "$1: state removed"
}
# host cgroup of a pid (the "0::" line)
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2> /dev/null; }
pid_of() { rt state "$1" 2> /dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }

echo "guest: $(uname -r); PID 1 $(cat /proc/1/comm), $(systemctl --version | head -1);" \
    "$(grep -c ' cgroup2 ' /proc/mounts) cgroup2 mount(s), controllers: $(cat $CG/cgroup.controllers)"
echo "runtime: $RT ($("$RT" --version 2> /dev/null | head -1))"
if [ ! -x "$RT" ]; then
    echo "no runtime at $RT"
    echo "0 passed, 1 failed"
    exit 1
fi
rm -rf "$WORK" "$ROOT"
mkdir -p "$WORK/rootfs"/{bin,proc,sys,dev,tmp,etc} "$ROOT"
cp "$BUSYBOX" "$WORK/rootfs/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -sf busybox "$WORK/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' > "$WORK/rootfs/etc/passwd"
t0=$(cut -d' ' -f1 /proc/uptime)

# --- features ------------------------------------------------------------------
contains "features: systemd cgroup driver" '"systemd": true' "$(rt features 2>&1)"

# --- limits: scope files, systemctl show, inside the container ------------------
# systemd owns memory max/low/swap, CPU weight, quota/period, cpuset, tasks,
# IO weight; hugetlb and memory.swap.high are written to the files.
ID=sdlim
U=oxtest-$ID.scope
S=$CG/system.slice/$U
bundle $ID "system.slice:oxtest:$ID" \
    'cat /proc/self/cgroup; for f in memory.max memory.low memory.swap.max cpu.max cpu.weight pids.max cpuset.cpus hugetlb.2MB.max; do echo in:$f=$(cat /sys/fs/cgroup/$f); done; echo ready; exec sleep 1000' \
    '{"devices": [{"allow": false, "access": "rwm"}],
      "memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
      "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
      "pids": {"limit": 20},
      "blockIO": {"weight": 500},
      "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
      "unified": {"memory.swap.high": "50331648"}}'
if run $ID && wait_for "$WORK/$ID/out" ready; then
    ok "$ID: container runs (cgroupsPath system.slice:oxtest:$ID)"
    pid=$(pid_of $ID)
    check "$ID: init's cgroup" "/system.slice/$U" "$(cgroup_of "$pid")"
    check "$ID: unit active" active "$(systemctl is-active -- $U 2>&1)"
    check "$ID: unit's slice" system.slice "$(show $U Slice)"
    check "$ID: unit's ControlGroup" "/system.slice/$U" "$(show $U ControlGroup)"
    check "$ID: Delegate" yes "$(show $U Delegate)"
    check "$ID: memory.max" 67108864 "$(one $S/memory.max)"
    check "$ID: MemoryMax" 67108864 "$(show $U MemoryMax)"
    check "$ID: memory.low" 33554432 "$(one $S/memory.low)"
    check "$ID: MemoryLow" 33554432 "$(show $U MemoryLow)"
    check "$ID: memory.swap.max (swap - limit)" 33554432 "$(one $S/memory.swap.max)"
    check "$ID: MemorySwapMax" 33554432 "$(show $U MemorySwapMax)"
    check "$ID: cpu.weight (shares 1024)" 39 "$(one $S/cpu.weight)"
    check "$ID: CPUWeight" 39 "$(show $U CPUWeight)"
    check "$ID: cpu.max" "50000 100000" "$(one $S/cpu.max)"
    check "$ID: CPUQuotaPerSecUSec" 500ms "$(show $U CPUQuotaPerSecUSec)"
    check "$ID: CPUQuotaPeriodUSec" 100ms "$(show $U CPUQuotaPeriodUSec)"
    check "$ID: cpuset.cpus" 0 "$(one $S/cpuset.cpus)"
    check "$ID: AllowedCPUs" 0 "$(show $U AllowedCPUs)"
    check "$ID: cpuset.mems" 0 "$(one $S/cpuset.mems)"
    check "$ID: AllowedMemoryNodes" 0 "$(show $U AllowedMemoryNodes)"
    check "$ID: pids.max" 20 "$(one $S/pids.max)"
    check "$ID: TasksMax" 20 "$(show $U TasksMax)"
    check "$ID: io.weight (blkio 500)" "default 4950" "$(one $S/io.weight)"
    ref "$ID: IOWeight" 4950 "[not set]" "$(show $U IOWeight)"
    check "$ID: hugetlb.2MB.max (not systemd's)" 4194304 "$(one $S/hugetlb.2MB.max)"
    check "$ID: memory.swap.high (unified, not systemd's)" 50331648 "$(one $S/memory.swap.high)"
    out=$(cat "$WORK/$ID/out")
    contains "$ID: inside, own cgroup is the namespace root" "0::/" "$out"
    contains "$ID: inside, memory.max" "in:memory.max=67108864" "$out"
    contains "$ID: inside, memory.low" "in:memory.low=33554432" "$out"
    contains "$ID: inside, memory.swap.max" "in:memory.swap.max=33554432" "$out"
    contains "$ID: inside, cpu.max" "in:cpu.max=50000 100000" "$out"
    contains "$ID: inside, cpu.weight" "in:cpu.weight=39" "$out"
    contains "$ID: inside, pids.max" "in:pids.max=20" "$out"
    contains "$ID: inside, cpuset.cpus" "in:cpuset.cpus=0" "$out"
    contains "$ID: inside, hugetlb.2MB.max" "in:hugetlb.2MB.max=4194304" "$out"

    # update: systemd's properties and the files, and the files systemd does
    # not own survive systemd re-applying the unit's properties
    if rt update --memory 128M --memory-swap 160M --pids-limit 50 --cpu-quota 20000 --cpu-share 2048 $ID; then
        ok "update: accepted"
        check "update: memory.max" 134217728 "$(one $S/memory.max)"
        check "update: MemoryMax" 134217728 "$(show $U MemoryMax)"
        check "update: memory.swap.max" 33554432 "$(one $S/memory.swap.max)"
        check "update: MemorySwapMax" 33554432 "$(show $U MemorySwapMax)"
        check "update: pids.max" 50 "$(one $S/pids.max)"
        check "update: TasksMax" 50 "$(show $U TasksMax)"
        check "update: cpu.max" "20000 100000" "$(one $S/cpu.max)"
        check "update: CPUQuotaPerSecUSec" 200ms "$(show $U CPUQuotaPerSecUSec)"
        check "update: cpu.weight (shares 2048)" 79 "$(one $S/cpu.weight)"
        check "update: CPUWeight" 79 "$(show $U CPUWeight)"
        check "update: memory.low kept" 33554432 "$(one $S/memory.low)"
        check "update: hugetlb.2MB.max kept" 4194304 "$(one $S/hugetlb.2MB.max)"
        check "update: memory.swap.high kept" 50331648 "$(one $S/memory.swap.high)"
        check "update: seen inside" 134217728 "$(rt exec $ID cat /sys/fs/cgroup/memory.max 2>&1)"
    else
        nok "update: refused"
    fi
    # a daemon-reload makes systemd re-apply every unit's properties
    systemctl daemon-reload
    check "daemon-reload: memory.max kept" 134217728 "$(one $S/memory.max)"
    check "daemon-reload: hugetlb.2MB.max kept" 4194304 "$(one $S/hugetlb.2MB.max)"
    check "daemon-reload: memory.swap.high kept" 50331648 "$(one $S/memory.swap.high)"
    # without IOWeight on the unit, systemd writes its default back
    ref "daemon-reload: io.weight kept" "default 4950" "default 100" "$(one $S/io.weight)"

    # exec, ps, stats
    check "exec: runs in the container's cgroup" "0::/" "$(rt exec $ID cat /proc/self/cgroup 2>&1)"
    check "exec: exit status" 3 "$(rt exec $ID sh -c 'exit 3' > /dev/null 2>&1; echo $?)"
    rt exec -d $ID sleep 999 > /dev/null 2>&1 < /dev/null
    xp=$(pgrep -f 'sleep 999' | head -1)
    check "exec -d: process in the scope" "/system.slice/$U" "$(cgroup_of "$xp")"
    check "ps --format json" "[$pid,$xp]" "$(rt ps --format json $ID 2>&1 | tr -d ' \n')"
    contains "ps table" "sleep 1000" "$(rt ps $ID 2>&1)"
    stats=$(rt events --stats $ID 2>&1)
    contains "events --stats: type" '"type":"stats"' "$stats"
    contains "events --stats: memory limit" '"limit":134217728' "$stats"
    contains "events --stats: pids" '"pids":{"current":2' "$stats"

    # pause / resume
    if rt pause $ID; then
        check "pause: cgroup.freeze" 1 "$(one $S/cgroup.freeze)"
        contains "pause: cgroup.events" "frozen 1" "$(one $S/cgroup.events)"
        check "pause: state" paused "$(status $ID)"
        rt resume $ID && ok "resume: accepted" || nok "resume: refused"
        contains "resume: cgroup.events" "frozen 0" "$(one $S/cgroup.events)"
        check "resume: state" running "$(status $ID)"
    else
        nok "pause: refused"
    fi
    rt delete -f $ID && ok "$ID: delete -f of a running container" || nok "$ID: delete -f failed"
    gone $ID "$S"
else
    nok "$ID: container did not start: $(cat "$WORK/$ID/out")"
    rt delete -f $ID > /dev/null 2>&1
fi

# --- where scopes land -------------------------------------------------------
# place ID CGROUPS_PATH UNIT CGROUP: run, find it there, kill, delete, gone
place() {
    local id=$1 path=$2 unit=$3 cg=$4
    bundle "$id" "$path" 'echo ready; exec sleep 1000' '{"pids": {"limit": 10}}'
    if run "$id" && wait_for "$WORK/$id/out" ready; then
        ok "$id: runs with cgroupsPath '$path'"
        check "$id: init's cgroup" "$cg" "$(cgroup_of "$(pid_of "$id")")"
        check "$id: unit active" active "$(systemctl is-active -- "$unit" 2>&1)"
        check "$id: unit's ControlGroup" "$cg" "$(show "$unit" ControlGroup)"
        check "$id: TasksMax" 10 "$(show "$unit" TasksMax)"
        check "$id: pids.max" 10 "$(one "$CG$cg/pids.max")"
        rt kill "$id" KILL
        wait_status "$id" stopped && ok "$id: stopped after kill" || nok "$id: not stopped after kill: $(status "$id")"
        rt delete "$id" && ok "$id: deleted" || nok "$id: delete failed"
        gone "$id" "$CG$cg"
    else
        nok "$id: did not start with cgroupsPath '$path': $(cat "$WORK/$id/out")"
        rt delete -f "$id" > /dev/null 2>&1
    fi
}
place sdnest "oxtest-a-b.slice:pfx:sdnest" pfx-sdnest.scope \
    /oxtest.slice/oxtest-a.slice/oxtest-a-b.slice/pfx-sdnest.scope
# runc's defaults for empty parts: slice system.slice, prefix "" (unit "-<name>.scope")
place sdempty "::sdempty" -sdempty.scope /system.slice/-sdempty.scope

# --- OOM kill reported by events -----------------------------------------------
ID=sdoom
U=oxtest-$ID.scope
S=$CG/system.slice/$U
bundle $ID "system.slice:oxtest:$ID" \
    'echo ready; sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd-exit=$?; exec sleep 1000' \
    '{"memory": {"limit": 16777216, "swap": 16777216}}'
if run $ID && wait_for "$WORK/$ID/out" ready; then
    rt events --interval 500ms $ID > "$WORK/$ID/events" 2>&1 &
    evpid=$!
    wait_for "$WORK/$ID/out" dd-exit
    check "oom: dd was killed" "dd-exit=137" "$(grep dd-exit "$WORK/$ID/out")"
    contains "oom: memory.events oom_kill" "oom_kill 1" "$(one $S/memory.events)"
    wait_for "$WORK/$ID/events" '"type":"oom"' && ok "oom: events reported it" ||
        nok "oom: no oom event: $(cat "$WORK/$ID/events")"
    check "oom: the container's init survives (unit still active)" active "$(systemctl is-active -- $U 2>&1)"
    rt kill $ID KILL
    i=0
    while kill -0 $evpid 2> /dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 $evpid 2> /dev/null; then
        nok "oom: events still running after the container stopped"
        kill $evpid
    else
        ok "oom: events exited when the container stopped"
    fi
    rt delete -f $ID > /dev/null 2>&1
    gone $ID "$S"
else
    nok "$ID: did not start: $(cat "$WORK/$ID/out")"
    rt delete -f $ID > /dev/null 2>&1
fi

# --- a container that exits by itself: run to completion, then delete --------
ID=sdrun
bundle $ID "system.slice:oxtest:$ID" 'echo done-$(cat /sys/fs/cgroup/pids.max)' '{"pids": {"limit": 7}}'
out=$(rt run --bundle "$WORK/$ID" $ID 2> "$WORK/$ID/err" < /dev/null)
check "run: output and exit" "done-7 0" "$out $?"
gone $ID "$CG/system.slice/oxtest-$ID.scope"

# --- bad input: a clear error, nothing left behind ---------------------------
# refused ID CGROUPS_PATH NEEDLE OXRUN_NEEDLE [WRAPPER...]: create must
# fail, its error must contain NEEDLE (and with oxrun OXRUN_NEEDLE, e.g. the
# field's name; "" = none); no state, unit or cgroup may remain.
refused() {
    local id=$1 path=$2 needle=$3 oxneedle=$4 out
    shift 4
    bundle "$id" "$path" 'exec sleep 1000' '{"pids": {"limit": 10}}'
    # (output to a file: an accepted container's init would hold a pipe open)
    if "$@" timeout -k 5 60 "$RT" --root "$ROOT" --systemd-cgroup create --bundle "$WORK/$id" "$id" \
        > "$WORK/$id/out" 2>&1 < /dev/null; then
        nok "$id: '$path' accepted"
        rt delete -f "$id" > /dev/null 2>&1
    else
        out=$(cat "$WORK/$id/out")
        contains "$id: '$path' refused, error mentions '$needle'" "$needle" "$out"
        [ "$NAME" = oxrun ] && [ -n "$oxneedle" ] &&
            contains "$id: error names '$oxneedle'" "$oxneedle" "$out"
        echo "     ($NAME said: $(echo "$out" | grep -v 'level=warning' | tail -n 2 | tr '\n' ' ' | cut -c1-400))"
    fi
    local left
    left="$(units_of "$id")$(cgroups_of "$id")$(ls -d "$ROOT/$id" 2> /dev/null)"
    [ -z "$left" ] && ok "$id: nothing left" || nok "$id: left behind: $left"
}
# runc's wording and ours both name the value; ours also the field
F=linux.cgroupsPath
refused sdbad2 "a:b" 'a:b' $F
refused sdbad4 "a:b:c:d" 'a:b:c:d' $F
refused sdslash "system.slice/x.slice:oxtest:sdslash" "system.slice/x.slice" $F
refused sdnoslice "system:oxtest:sdnoslice" "system" $F
# a unit name systemd refuses (runc: systemd's D-Bus error; oxrun checks first)
refused sdbadunit "system.slice:bad!prefix:sdbadunit" "bad!prefix-sdbadunit.scope" $F
# A D-Bus error: the unit exists already (a second container with the same
# cgroupsPath). It must be refused and the first container left alone.
# (runc 1.1.5 puts the second one into the first one's scope instead, and
# deleting either stops both: not checked with runc.)
ID=sddup
U=oxtest-$ID.scope
bundle $ID "system.slice:oxtest:$ID" 'echo ready; exec sleep 1000' '{"pids": {"limit": 10}}'
if [ "$NAME" != oxrun ]; then
    echo "info $ID: not checked with $NAME (it joins the existing scope)"
elif run $ID && wait_for "$WORK/$ID/out" ready; then
    if timeout -k 5 60 "$RT" --root "$ROOT" --systemd-cgroup create --bundle "$WORK/$ID" ${ID}2 \
        > "$WORK/$ID/out2" 2>&1 < /dev/null; then
        nok "${ID}2: a second container in $U accepted"
        rt delete -f ${ID}2 > /dev/null 2>&1
    else
        contains "${ID}2: refused, error names the unit" "$U" "$(cat "$WORK/$ID/out2")"
        echo "     ($NAME said: $(tail -n 2 "$WORK/$ID/out2" | tr '\n' ' ' | cut -c1-400))"
    fi
    [ -e "$ROOT/${ID}2" ] && nok "${ID}2: state left" || ok "${ID}2: no state left"
    check "$ID: the first container still runs" running "$(status $ID)"
    check "$ID: its unit still active" active "$(systemctl is-active -- $U 2>&1)"
    check "$ID: its init still in the scope" "/system.slice/$U" "$(cgroup_of "$(pid_of $ID)")"
    rt delete -f $ID > /dev/null 2>&1
    gone $ID "$CG/system.slice/$U"
else
    nok "$ID: did not start: $(cat "$WORK/$ID/out")"
    rt delete -f $ID > /dev/null 2>&1
fi
# systemd's bus unreachable: the private socket and the system bus hidden
# in a private mount namespace (nothing changes outside it)
nobus() {
    unshare -m --propagation private sh -c 'touch /tmp/sdcheck-nosock &&
        mount --bind /tmp/sdcheck-nosock /run/systemd/private &&
        mount -t tmpfs -o mode=0755 tmpfs /run/dbus && exec "$@"' sh "$@"
}
refused sdnobus "system.slice:oxtest:sdnobus" systemd /run/systemd/private nobus
# one of the two ways to systemd hidden: the other one is used
# works ID WRAPPER...: create + start + delete through WRAPPER
works() {
    local id=$1
    shift
    bundle "$id" "system.slice:oxtest:$id" 'exec sleep 1000' '{"pids": {"limit": 10}}'
    if "$@" timeout -k 5 60 "$RT" --root "$ROOT" --systemd-cgroup create --bundle "$WORK/$id" "$id" \
        > "$WORK/$id/out" 2>&1 < /dev/null; then
        check "$id: created, unit active" active "$(systemctl is-active -- "oxtest-$id.scope" 2>&1)"
        rt delete -f "$id" > /dev/null 2>&1
        gone "$id" "$CG/system.slice/oxtest-$id.scope"
    else
        nok "$id: refused: $(cat "$WORK/$id/out")"
    fi
}
noprivate() {
    unshare -m --propagation private sh -c 'touch /tmp/sdcheck-nosock &&
        mount --bind /tmp/sdcheck-nosock /run/systemd/private && exec "$@"' sh "$@"
}
works sdnopriv noprivate
nodbus() { unshare -m --propagation private sh -c 'mount -t tmpfs -o mode=0755 tmpfs /run/dbus && exec "$@"' sh "$@"; }
works sdnodbus nodbus
# systemd not running at all (no /run/systemd/system)
nosystemd() {
    unshare -m --propagation private sh -c 'mount -t tmpfs -o mode=0755 tmpfs /run/systemd &&
        mount -t tmpfs -o mode=0755 tmpfs /run/dbus && exec "$@"' sh "$@"
}
refused sdnosd "system.slice:oxtest:sdnosd" systemd --systemd-cgroup nosystemd

rm -rf "$WORK"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "checks took $(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}') s (guest time)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
