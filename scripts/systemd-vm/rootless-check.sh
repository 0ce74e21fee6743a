#!/bin/bash
# rootless-check.sh - rootless oxrun on pure cgroup v2 with a delegated
# cgroup, run INSIDE the systemd guest by guest-tests.sh (as root; it drops
# to an unprivileged user for the runtime calls).
#
# The delegation is made the way systemd makes it for a user's
# user@.service (Delegate=yes): a cgroup whose directory, cgroup.procs,
# cgroup.subtree_control and cgroup.threads belong to the user, with the
# user's process inside it. Checks: limits applied there (read from the
# host side and from inside the container), the container's cgroup removed
# on delete, state under $XDG_RUNTIME_DIR; and without delegation a limit
# is refused naming the field, nothing left. Then the systemd driver with
# the user's own systemd instance: a scope made by it, limits set as its
# properties. One line per check, then
# "N passed, N failed"; exit 1 on any failure.
#
# Env: RUNTIME (default ./oxrun), BUSYBOX (default ./busybox).
RT=${RUNTIME:-$PWD/oxrun}
BUSYBOX=${BUSYBOX:-$PWD/busybox}
U=oxrl
CG=/sys/fs/cgroup
DELEG=$CG/oxrl-deleg
WORK=/tmp/rlcheck
# ok, nok, check, contains; $pass and $fail
. "$(dirname "$0")/checklib.sh"

id "$U" > /dev/null 2>&1 || useradd --no-create-home --shell /bin/sh "$U"
UID_=$(id -u "$U")
GID_=$(id -g "$U")
rm -rf "$WORK"
mkdir -p "$WORK/b/rootfs/bin" "$WORK/b/rootfs/proc" "$WORK/b/rootfs/dev" \
    "$WORK/b/rootfs/sys" "$WORK/xdg"
cp "$BUSYBOX" "$WORK/b/rootfs/bin/busybox"
for a in sh cat sleep; do ln -s busybox "$WORK/b/rootfs/bin/$a"; done
cp "$RT" "$WORK/oxrun"
chown -R "$UID_:$GID_" "$WORK"
chmod 700 "$WORK/xdg"
# as_user CMD...: run as the user, from its own (delegated) cgroup when
# SHELL_CG is set
as_user() {
    ( [ -n "${SHELL_CG:-}" ] && echo $BASHPID > "$SHELL_CG/cgroup.procs"
      cd "$WORK/b" && exec timeout -k 5 60 setpriv --reuid "$UID_" --regid "$GID_" --clear-groups \
        env XDG_RUNTIME_DIR="$WORK/xdg" "$WORK/oxrun" "$@" ) 2>&1
}
# config: spec --rootless, then args, cgroupsPath and resources
config() {
    rm -f "$WORK/b/config.json"
    (cd "$WORK/b" && setpriv --reuid "$UID_" --regid "$GID_" --clear-groups "$WORK/oxrun" spec --rootless)
    sed -i -e 's/"terminal": true/"terminal": false/' \
        -e "s|\"sh\"|$1|" \
        -e "s|\"linux\": {|\"linux\": {\"cgroupsPath\": \"$2\", \"resources\": {\"memory\": {\"limit\": 67108864}, \"pids\": {\"limit\": 32}},|" \
        "$WORK/b/config.json"
}

# 1. Not delegated: the user's process is in root's cgroup tree.
config '"true"' /oxrl-none/c
out=$(as_user run rl-none)
contains "rootless, not delegated: refused" "not delegated" "$out"
contains "... naming the field" "linux.resources" "$out"
check "... no cgroup made" "no" "$([ -e $CG/oxrl-none ] && echo yes || echo no)"
check "... no state" "" "$(ls "$WORK/xdg/oxrun" 2> /dev/null)"

# 2. Delegated as systemd does for user@.service.
mkdir -p "$DELEG/shell"
for f in "$DELEG" "$DELEG/cgroup.procs" "$DELEG/cgroup.subtree_control" "$DELEG/cgroup.threads" \
    "$DELEG/shell" "$DELEG/shell/cgroup.procs"; do
    chown "$UID_:$GID_" "$f"
done
echo "+memory +pids" > "$DELEG/cgroup.subtree_control" 2> /dev/null
export SHELL_CG=$DELEG/shell
config '"sleep", "100"' "/${DELEG#$CG/}/c"
# (stdio to a file, as a client would give a detached container: one on
# the $(...) pipe would keep the substitution waiting)
as_user run -d rl-deleg > "$WORK/run.log" 2>&1
check "rootless, delegated: run -d" "" "$(cat "$WORK/run.log")"
check "memory.max (host side)" "67108864" "$(cat "$DELEG/c/memory.max" 2>&1)"
check "pids.max (host side)" "32" "$(cat "$DELEG/c/pids.max" 2>&1)"
out=$(as_user exec rl-deleg cat /sys/fs/cgroup/memory.max /proc/self/cgroup)
contains "memory.max (inside)" "67108864" "$out"
contains "exec'd process in the container's cgroup" "0::/${DELEG#$CG/}/c" "$out"
check "state under XDG_RUNTIME_DIR" "rl-deleg" "$(ls "$WORK/xdg/oxrun" 2> /dev/null)"
out=$(as_user delete -f rl-deleg)
check "delete -f" "" "$out"
check "container cgroup removed" "no" "$([ -e "$DELEG/c" ] && echo yes || echo no)"
check "no state left" "" "$(ls "$WORK/xdg/oxrun" 2> /dev/null)"
check "no process of the user left" "" "$(pgrep -u "$UID_" | tr '\n' ' ')"

unset SHELL_CG
rmdir "$DELEG/shell" "$DELEG" 2> /dev/null

# 3. The systemd driver with the user's own systemd (runc's rootless
#    --systemd-cgroup): a user manager run as user@.service runs it, as a
#    service of the user's with Delegate=yes.
RUNDIR=/run/user/$UID_
MGR=oxrl-user-manager
mkdir -p "$RUNDIR"
chown "$UID_:$GID_" "$RUNDIR"
chmod 700 "$RUNDIR"
systemd-run --quiet --unit=$MGR --uid="$UID_" --gid="$GID_" -p Delegate=yes -p Type=notify \
    -E XDG_RUNTIME_DIR="$RUNDIR" /lib/systemd/systemd --user > /dev/null 2>&1
check "user manager up" "active" "$(systemctl is-active $MGR 2>&1)"
MGR_CG=$CG$(systemctl show -p ControlGroup --value $MGR)
usd() { # as the user, against its manager
    setpriv --reuid "$UID_" --regid "$GID_" --clear-groups env XDG_RUNTIME_DIR="$RUNDIR" "$@" 2>&1
}
config '"sleep", "100"' "user.slice:oxit:rl"
(cd "$WORK/b" && usd timeout -k 5 60 "$WORK/oxrun" --root "$WORK/xdg/oxrun" --systemd-cgroup run -d rl-sd) \
    > "$WORK/run.log" 2>&1
check "rootless --systemd-cgroup run -d" "" "$(cat "$WORK/run.log")"
check "scope active in the user's systemd" "active" \
    "$(usd systemctl --user is-active oxit-rl.scope)"
check "memory.max (scope, host side)" "67108864" \
    "$(cat "$MGR_CG/user.slice/oxit-rl.scope/memory.max" 2>&1)"
check "MemoryMax (the user's systemd)" "67108864" \
    "$(usd systemctl --user show -p MemoryMax --value oxit-rl.scope)"
out=$(cd "$WORK/b" && usd timeout -k 5 60 "$WORK/oxrun" --root "$WORK/xdg/oxrun" exec rl-sd cat /sys/fs/cgroup/pids.max)
contains "pids.max (inside, through exec)" "32" "$out"
# This caller runs in a system service, outside the user's tree: the
# exec'd process cannot join the scope, and is told so (as runc skips it).
contains "exec outside the user's tree: warned" "stays out of" "$out"
# From a scope of the user's own systemd (as a user's session runs) the
# exec'd process joins the container's scope.
out=$(cd "$WORK/b" && usd systemd-run --user --scope --quiet timeout -k 5 60 "$WORK/oxrun" \
    --root "$WORK/xdg/oxrun" exec rl-sd cat /proc/self/cgroup)
check "exec from the user's tree joins the scope" "0::/${MGR_CG#$CG/}/user.slice/oxit-rl.scope" "$out"
out=$(cd "$WORK/b" && usd timeout -k 5 60 "$WORK/oxrun" --root "$WORK/xdg/oxrun" --systemd-cgroup delete -f rl-sd)
check "delete -f" "" "$out"
check "scope gone" "inactive" "$(usd systemctl --user is-active oxit-rl.scope)"
check "scope cgroup gone" "no" "$([ -e "$MGR_CG/user.slice/oxit-rl.scope" ] && echo yes || echo no)"
systemctl stop $MGR > /dev/null 2>&1
rm -rf "$WORK"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
