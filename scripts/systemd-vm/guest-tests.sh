#!/bin/bash
# guest-tests.sh - run INSIDE the systemd guest by scripts/test-systemd.sh
# (cwd: the shared directory holding the binaries): check.sh for each
# runtime in $RUNTIMES, rootless-check.sh when that includes oxrun, then
# `cri-tool systemd` (containerd 2.1.9 with SystemdCgroup = true, a
# kubelet-style pod) for each handler in $CRI.
# Prints every part's lines, then the sum "N passed, N failed"; a part that
# ends without its own summary line counts as one failure. Exit 1 on any
# failure.
#
# With CGROUP=v1 (the guest booted with SDVM_CGROUP=v1) only check-v1.sh
# runs, for each runtime in $RUNTIMES.
#
# Env: RUNTIMES (default "oxrun"; "runc" = the reference runc 1.1.5),
#      CRI (default "oxrun"; "runc" = the Go shim with runc; "" = none),
#      CONTAINERD_BIN (default /opt/oxrun-test/containerd-2.1.9/usr/bin).
cd "$(dirname "$0")" || exit 1
here=$PWD
pass=0
fail=0
# part NAME CMD...: run, show, add its summary
part() {
    local name=$1 log
    shift
    log=$(mktemp)
    echo "== $name"
    timeout -k 10 400 "$@" > "$log" 2>&1 < /dev/null
    cat "$log"
    local sum
    sum=$(tail -n 1 "$log" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
    if [ -n "$sum" ]; then
        pass=$((pass + ${sum% *}))
        fail=$((fail + ${sum#* }))
    else
        echo "FAIL $name: ended without a summary"
        fail=$((fail + 1))
    fi
    rm -f "$log"
}
if [ "${CGROUP:-v2}" = v1 ]; then
    # the guest booted with SDVM_CGROUP=v1: only the v1 checks
    for rt in ${RUNTIMES-oxrun}; do
        part "check-v1.sh, RUNTIME=$rt --systemd-cgroup, cgroup v1" env RUNTIME="$here/$rt" BUSYBOX="$here/busybox" bash ./check-v1.sh
    done
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
fi
for rt in ${RUNTIMES-oxrun}; do
    part "check.sh, RUNTIME=$rt --systemd-cgroup" env RUNTIME="$here/$rt" BUSYBOX="$here/busybox" bash ./check.sh
done
case " ${RUNTIMES-oxrun} " in
*" oxrun "*)
    part "rootless-check.sh, oxrun as an unprivileged user, cgroup v2 delegated" \
        env RUNTIME="$here/oxrun" BUSYBOX="$here/busybox" bash ./rootless-check.sh
    ;;
esac
for h in ${CRI-oxrun}; do
    part "containerd 2.1.9, SystemdCgroup = true, handler $h" \
        env PATH="${CONTAINERD_BIN:-/opt/oxrun-test/containerd-2.1.9/usr/bin}:$here:$PATH" \
        OXRUN_BIN="$here/oxrun" OXRUN_SHIM_BIN="$here/containerd-shim-rust-v2" \
        ./cri-tool systemd "$h"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
