#!/bin/bash
# check-v1.sh - the systemd cgroup driver on a cgroup v1 host, run INSIDE the
# systemd guest booted with SDVM_CGROUP=v1 (systemd's legacy layout: one
# hierarchy per v1 controller under /sys/fs/cgroup, systemd's own at
# /sys/fs/cgroup/systemd, cgroup2 at .../unified) by scripts/test-systemd.sh,
# against one runtime with --systemd-cgroup:
#
#   RUNTIME=/path/to/oxrun ./check-v1.sh     (or RUNTIME=.../runc: the reference)
#
# The container's unit <prefix>-<name>.scope must be active with Delegate and
# its v1 properties (MemoryLimit, CPUShares, CPUQuotaPerSecUSec, TasksMax);
# its directory <hierarchy>/<slice path>/<unit> must hold the limits and
# the container's processes in EVERY hierarchy, those systemd does not
# manage (cpuset, freezer, net_cls, perf_event, hugetlb...) too; update,
# pause/resume (v1 freezer), exec, ps, events, kill and delete must work; a
# daemon-reload must not undo the limits or the device rules; delete and
# refused input leave no unit and no directory in any hierarchy. One line
# per check, then "N passed, N failed"; exit 1 if anything failed.
#
# Env: RUNTIME (default ./oxrun), BUSYBOX (default ./busybox, else /bin/busybox).
RT=${RUNTIME:-$PWD/oxrun}
NAME=$(basename "$RT")
BUSYBOX=${BUSYBOX:-$PWD/busybox}
[ -x "$BUSYBOX" ] || BUSYBOX=/bin/busybox
ROOT=/run/sdcheck1-$NAME
WORK=/tmp/sdcheck1-$NAME
CG=/sys/fs/cgroup
# ok, nok, check, contains, rt, ref, one, show, wait_for, status, bundle, run
. "$(dirname "$0")/checklib.sh"
pid_of() { rt state "$1" 2> /dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
units_of() { systemctl list-units --all --plain --no-legend --no-pager 2> /dev/null | grep -F -- "-$1.scope"; }
cgroups_of() { find $CG -name "*$1*" -type d 2> /dev/null; }
# hierarchies: the directory names under /sys/fs/cgroup (systemd, memory,
# cpu,cpuacct, ..., unified)
hiers() { awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/mounts | sed "s|^$CG/||" | grep -v "^$CG" | sort; }
# elsewhere PID CGROUP: "controllers:path" of the /proc/PID/cgroup lines
# whose path is not CGROUP (empty: in CGROUP in every hierarchy)
elsewhere() { awk -F: -v want="$2" '$3 != want {print $2 ":" $3}' "/proc/$1/cgroup" 2>&1 | tr '\n' ' ' | sed 's/ $//'; }
# members DIR_SUFFIX PID: the hierarchies whose DIR_SUFFIX does not list PID
missing_in() {
    local h out=
    for h in $(hiers); do
        grep -qx "$2" "$CG/$h$1/cgroup.procs" 2> /dev/null || out="$out $h"
    done
    echo "${out# }"
}
# devs_of WHEN LIST: the container's device cgroup still allows the
# standard devices and nothing else (not all, not the guest's disk)
devs_of() {
    case "$2" in *"a *:* rwm"* | *"b 254:"*rw*) nok "$1: devices.list allows too much: $2" ;; *) ok "$1: devices.list is not allow-all" ;; esac
    contains "$1: devices.list allows /dev/null" "c 1:3 rwm" "$2"
    contains "$1: devices.list allows /dev/pts/*" "c 136:* rwm" "$2"
}
# gone ID: after delete, no unit, no directory in any hierarchy, no state
gone() {
    local left
    left=$(units_of "$1")
    [ -z "$left" ] && ok "$1: no unit after delete" || nok "$1: unit left after delete: $left"
    left=$(cgroups_of "$1" | tr '\n' ' ')
    [ -z "$left" ] && ok "$1: no directory left in any hierarchy" || nok "$1: left after delete: $left"
    [ -e "$ROOT/$1" ] && nok "$1: state $ROOT/$1 left after delete" || ok "$1: state removed"
}

echo "guest: $(uname -r); PID 1 $(cat /proc/1/comm), $(systemctl --version | head -1); hierarchies: $(hiers | tr '\n' ' ')"
echo "runtime: $RT ($("$RT" --version 2> /dev/null | head -1))"
if [ ! -x "$RT" ] || [ ! -d $CG/memory ] || [ ! -d $CG/freezer ]; then
    echo "no runtime at $RT, or not a cgroup v1 guest (boot it with SDVM_CGROUP=v1)"
    echo "0 passed, 1 failed"
    exit 1
fi
rm -rf "$WORK" "$ROOT"
mkdir -p "$WORK/rootfs"/{bin,proc,sys,dev,tmp,etc} "$ROOT"
cp "$BUSYBOX" "$WORK/rootfs/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -sf busybox "$WORK/rootfs/bin/$a"; done
t0=$(cut -d' ' -f1 /proc/uptime)

ID=sdv1
U=oxtest-$ID.scope
P=/system.slice/$U
bundle $ID "system.slice:oxtest:$ID" \
    'echo in:mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) in:pids=$(cat /sys/fs/cgroup/pids/pids.max); echo ready; exec sleep 1000' \
    '{"devices": [{"allow": false, "access": "rwm"}],
      "memory": {"limit": 67108864},
      "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
      "pids": {"limit": 20}}'
if run $ID && wait_for "$WORK/$ID/out" ready; then
    ok "$ID: container runs (cgroupsPath system.slice:oxtest:$ID)"
    pid=$(pid_of $ID)
    check "$ID: unit active" active "$(systemctl is-active -- $U 2>&1)"
    check "$ID: unit's slice" system.slice "$(show $U Slice)"
    check "$ID: unit's ControlGroup" "$P" "$(show $U ControlGroup)"
    check "$ID: Delegate" yes "$(show $U Delegate)"
    # (runc 1.1.5 does not know the misc controller)
    ref "$ID: init in $P in every hierarchy (/proc/pid/cgroup)" "" "misc:/" "$(elsewhere "$pid" "$P")"
    ref "$ID: init in <hierarchy>$P/cgroup.procs everywhere (missing in:)" "" misc "$(missing_in "$P" "$pid")"
    for h in freezer cpuset perf_event net_cls,net_prio hugetlb; do
        [ -d "$CG/$h" ] && check "$ID: $h$P lists init" "$pid" "$(one "$CG/$h$P/cgroup.procs")"
    done
    check "$ID: memory.limit_in_bytes" 67108864 "$(one $CG/memory$P/memory.limit_in_bytes)"
    check "$ID: MemoryLimit" 67108864 "$(show $U MemoryLimit)"
    check "$ID: cpu.shares" 512 "$(one $CG/cpu,cpuacct$P/cpu.shares)"
    check "$ID: CPUShares" 512 "$(show $U CPUShares)"
    check "$ID: cpu.cfs_quota_us" 50000 "$(one $CG/cpu,cpuacct$P/cpu.cfs_quota_us)"
    check "$ID: cpu.cfs_period_us" 100000 "$(one $CG/cpu,cpuacct$P/cpu.cfs_period_us)"
    check "$ID: CPUQuotaPerSecUSec" 500ms "$(show $U CPUQuotaPerSecUSec)"
    check "$ID: pids.max" 20 "$(one $CG/pids$P/pids.max)"
    check "$ID: TasksMax" 20 "$(show $U TasksMax)"
    check "$ID: cpuset.cpus (not systemd's on v1)" 0 "$(one $CG/cpuset$P/cpuset.cpus)"
    check "$ID: cpuset.mems" 0 "$(one $CG/cpuset$P/cpuset.mems)"
    devs=$(one $CG/devices$P/devices.list)
    contains "$ID: devices.list has the default rules" "c 1:3 rwm" "$devs"
    case "$devs" in *"a *:* rwm"*) nok "$ID: devices.list allows everything: $devs" ;; *) ok "$ID: devices.list is not allow-all" ;; esac
    contains "$ID: inside, memory.limit_in_bytes" "in:mem=67108864" "$(cat "$WORK/$ID/out")"
    contains "$ID: inside, pids.max" "in:pids=20" "$(cat "$WORK/$ID/out")"
    # a daemon-reload makes systemd re-apply every unit's properties
    systemctl daemon-reload
    check "daemon-reload: memory.limit_in_bytes kept" 67108864 "$(one $CG/memory$P/memory.limit_in_bytes)"
    check "daemon-reload: cpuset.cpus kept" 0 "$(one $CG/cpuset$P/cpuset.cpus)"
    # (systemd writes the rules it was given: the same devices, its syntax)
    devs_of "daemon-reload" "$(one $CG/devices$P/devices.list)"
    check "daemon-reload: /dev/null still writable inside" ok "$(rt exec $ID sh -c 'echo x > /dev/null && echo ok' 2>&1)"

    if rt update --memory 128M --pids-limit 50 --cpu-quota 20000 --cpu-share 1024 $ID; then
        ok "update: accepted"
        check "update: memory.limit_in_bytes" 134217728 "$(one $CG/memory$P/memory.limit_in_bytes)"
        check "update: MemoryLimit" 134217728 "$(show $U MemoryLimit)"
        check "update: pids.max" 50 "$(one $CG/pids$P/pids.max)"
        check "update: TasksMax" 50 "$(show $U TasksMax)"
        check "update: cpu.cfs_quota_us" 20000 "$(one $CG/cpu,cpuacct$P/cpu.cfs_quota_us)"
        check "update: CPUQuotaPerSecUSec" 200ms "$(show $U CPUQuotaPerSecUSec)"
        check "update: cpu.shares" 1024 "$(one $CG/cpu,cpuacct$P/cpu.shares)"
        check "update: CPUShares" 1024 "$(show $U CPUShares)"
        check "update: cpuset.cpus kept" 0 "$(one $CG/cpuset$P/cpuset.cpus)"
        devs_of "update" "$(one $CG/devices$P/devices.list)"
    else
        nok "update: refused"
    fi

    # exec joins every hierarchy
    check "exec: exit status" 3 "$(rt exec $ID sh -c 'exit 3' > /dev/null 2>&1; echo $?)"
    rt exec -d $ID sleep 999 > /dev/null 2>&1 < /dev/null
    xp=$(pgrep -f 'sleep 999' | head -1)
    ref "exec -d: process in $P in every hierarchy" "" "misc:/" "$(elsewhere "$xp" "$P")"
    check "ps --format json" "[$pid,$xp]" "$(rt ps --format json $ID 2>&1 | tr -d ' \n')"
    stats=$(rt events --stats $ID 2>&1)
    contains "events --stats: memory limit" '"limit":134217728' "$stats"
    contains "events --stats: pids" '"pids":{"current":2' "$stats"

    if rt pause $ID; then
        check "pause: freezer.state" FROZEN "$(one $CG/freezer$P/freezer.state)"
        check "pause: state" paused "$(status $ID)"
        rt resume $ID && ok "resume: accepted" || nok "resume: refused"
        check "resume: freezer.state" THAWED "$(one $CG/freezer$P/freezer.state)"
        check "resume: state" running "$(status $ID)"
    else
        nok "pause: refused"
    fi
    rt kill $ID KILL
    i=0
    while [ "$(status $ID)" != stopped ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    check "kill: stopped" stopped "$(status $ID)"
    rt delete $ID && ok "$ID: deleted" || nok "$ID: delete failed"
    gone $ID
else
    nok "$ID: container did not start: $(cat "$WORK/$ID/out")"
    rt delete -f $ID > /dev/null 2>&1
fi

# a nested slice, and delete -f of a running container
ID=sdv1nest
U=pfx-$ID.scope
P=/oxtest.slice/oxtest-a.slice/$U
bundle $ID "oxtest-a.slice:pfx:$ID" 'echo ready; exec sleep 1000' '{"pids": {"limit": 10}}'
if run $ID && wait_for "$WORK/$ID/out" ready; then
    pid=$(pid_of $ID)
    check "$ID: unit's ControlGroup" "$P" "$(show $U ControlGroup)"
    # (runc 1.1.5 leaves it in the slice's devices cgroup here)
    ref "$ID: init in $P in every hierarchy" "" "misc:/ devices:/oxtest.slice/oxtest-a.slice" "$(elsewhere "$pid" "$P")"
    check "$ID: pids.max" 10 "$(one $CG/pids$P/pids.max)"
    rt delete -f $ID && ok "$ID: delete -f of a running container" || nok "$ID: delete -f failed"
    gone $ID
else
    nok "$ID: did not start: $(cat "$WORK/$ID/out")"
    rt delete -f $ID > /dev/null 2>&1
fi

# a container that exits by itself
ID=sdv1run
bundle $ID "system.slice:oxtest:$ID" 'echo done-$(cat /sys/fs/cgroup/pids/pids.max)' '{"pids": {"limit": 7}}'
out=$(rt run --bundle "$WORK/$ID" $ID 2> "$WORK/$ID/err" < /dev/null)
check "run: output and exit" "done-7 0" "$out $?"
gone $ID

# bad input: a clear error, nothing left in any hierarchy
# refused ID CGROUPS_PATH NEEDLE [RESOURCES]
refused() {
    local id=$1 path=$2 needle=$3 res=${4:-'{"pids": {"limit": 10}}'} out left
    bundle "$id" "$path" 'exec sleep 1000' "$res"
    if rt create --bundle "$WORK/$id" "$id" > "$WORK/$id/out" 2>&1 < /dev/null; then
        nok "$id: '$path' accepted"
        rt delete -f "$id" > /dev/null 2>&1
    else
        out=$(cat "$WORK/$id/out")
        contains "$id: '$path' refused, error mentions '$needle'" "$needle" "$out"
        echo "     ($NAME said: $(echo "$out" | tail -n 2 | tr '\n' ' ' | cut -c1-300))"
    fi
    left="$(units_of "$id")$(cgroups_of "$id")$(ls -d "$ROOT/$id" 2> /dev/null)"
    [ -z "$left" ] && ok "$id: nothing left" || nok "$id: left behind: $left"
}
refused sdv1bad2 "a:b" 'a:b'
refused sdv1bad4 "a:b:c:d" 'a:b:c:d'
refused sdv1slash "system.slice/x.slice:oxtest:sdv1slash" "system.slice/x.slice"
# a limit the kernel refuses once the unit exists: the unit goes too
refused sdv1badcpu "system.slice:oxtest:sdv1badcpu" cpus '{"cpu": {"cpus": "63"}}'
# rootless: the user's systemd needs cgroup v2 (runc: not supported either)
if [ "$NAME" = oxrun ]; then
    ID=sdv1rl
    mkdir -p "$WORK/$ID/xdg"
    cp "$RT" "$WORK/oxrun-rl"
    ln -s ../rootfs "$WORK/$ID/rootfs"
    (cd "$WORK/$ID" && "$RT" spec --rootless)
    chown 65534:65534 "$WORK/$ID/xdg"
    chmod 755 "$WORK" "$WORK/$ID"
    out=$(cd "$WORK/$ID" && timeout -k 5 60 setpriv --reuid 65534 --regid 65534 --clear-groups \
        env XDG_RUNTIME_DIR="$WORK/$ID/xdg" "$WORK/oxrun-rl" --systemd-cgroup run $ID 2>&1 < /dev/null)
    contains "rootless: refused on cgroup v1, clearly" "needs a pure cgroup v2 host" "$out"
    echo "     ($NAME said: $out)"
    left="$(units_of "$ID")$(cgroups_of "$ID")$(ls "$WORK/$ID/xdg" 2> /dev/null)"
    [ -z "$left" ] && ok "rootless: nothing left" || nok "rootless: left behind: $left"
fi

rm -rf "$WORK"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "checks took $(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}') s (guest time)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
