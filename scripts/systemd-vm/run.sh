#!/bin/bash
# run.sh - boot the systemd test guest (setup.sh: Debian bookworm, systemd as
# PID 1, pure cgroup v2, system D-Bus) under qemu TCG, run a command in it as
# the systemd service sdvm-run.service (system.slice), print its output,
# power off, exit with its status.
#
#   usage: run.sh [-m MEM_MB] [-c CPUS] [-t TIMEOUT_S] [-r RO_DIR]... [-k] DIR CMD [ARGS...]
#
#   DIR     host directory shared read-write over 9p: mounted at /mnt/host in
#           the guest and at its own host path; CMD starts there.
#   -r DIR  also share the host directory DIR read-only, at its host path
#           (e.g. /opt/oxrun-test, /usr/lib/cni); repeatable. Not under /run.
#   CMD     run by bash as root. One argument = a shell script; several
#           arguments are quoted and run as one command.
#   -k      keep the control directory (console.log, timing) and say where.
#   defaults: 1024 MB, 2 vCPUs, 300 s.
#
# Output: the command's stdout, then its stderr (not interleaved). Exit
# status: the command's, or 124 = timeout, 125 = the guest never reported.
# Env: SDVM_DIR (the guest built by setup.sh; default <repo>/target/systemd-vm),
#      SDVM_CGROUP (v2, the default: pure cgroup v2; v1: systemd's legacy
#      layout, the v1 controllers at /sys/fs/cgroup/<ctrl> and its own
#      hierarchy at /sys/fs/cgroup/systemd, plus cgroup2 at .../unified),
#      SDVM_APPEND (extra kernel arguments: sdvm.blame, sdvm.fastoff,
#      systemd.log_level=debug ...), SDVM_DEBUG=1 (print the console),
#      SDVM_TIMING=1 (boot timings on stderr), QEMU.
# The root image is opened with snapshot=on: every run starts from the same
# state, writes are thrown away, runs may go in parallel. Needs root (9p
# security_model=passthrough).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
D=${SDVM_DIR:-$HERE/../../target/systemd-vm}
MEM=1024 CPUS=2 TIMEOUT=300 KEEP=0
RO=()
usage() { echo "usage: $0 [-m MB] [-c CPUS] [-t SECS] [-r RO_DIR]... [-k] DIR CMD [ARGS...]" >&2; exit 2; }
while getopts "m:c:t:r:k" o; do
    case $o in
    m) MEM=$OPTARG ;; c) CPUS=$OPTARG ;; t) TIMEOUT=$OPTARG ;; k) KEEP=1 ;;
    r) RO+=("$(cd "$OPTARG" && pwd)") || exit 2 ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || usage
SHARE=$(cd "$1" && pwd) || exit 2
shift
for f in vmlinux initrd.cpio.gz root.ext4; do
    [ -s "$D/$f" ] || { echo "run.sh: $D/$f missing; run setup.sh first" >&2; exit 125; }
done

CTL=$(mktemp -d "${TMPDIR:-/tmp}/sdvm-ctl.XXXXXX")
trap '[ "$KEEP" = 1 ] && echo "run.sh: kept $CTL" >&2 || rm -rf "$CTL"' EXIT
if [ $# -eq 1 ]; then
    printf '%s\n' "$1" > "$CTL/cmd.sh"
else
    printf '%q ' "$@" > "$CTL/cmd.sh"
    echo >> "$CTL/cmd.sh"
fi
printf '%s' "$SHARE" > "$CTL/hostpath"
printf '%s' "$SHARE" > "$CTL/cwd"
EXTRA=()
: > "$CTL/roshares"
for i in "${!RO[@]}"; do
    EXTRA+=(-fsdev "local,id=ro$i,path=${RO[$i]},security_model=passthrough,readonly=on"
        -device "virtio-9p-pci,fsdev=ro$i,mount_tag=ro$i")
    echo "ro$i ${RO[$i]}" >> "$CTL/roshares"
done

case ${SDVM_CGROUP:-v2} in
v2) CGROUP="cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1" ;;
v1) CGROUP="systemd.unified_cgroup_hierarchy=0" ;;
*) echo "run.sh: SDVM_CGROUP must be v2 or v1" >&2; exit 2 ;;
esac
APPEND="console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check tsc=reliable \
$CGROUP \
systemd.unit=sdvm.target systemd.show_status=0 ${SDVM_APPEND:-}"

t0=$(date +%s.%N)
timeout -k 5 "$TIMEOUT" "${QEMU:-qemu-system-x86_64}" \
    -accel tcg,thread=multi,tb-size=256 -cpu max -M pc -smp "$CPUS" -m "$MEM" \
    -nodefaults -no-user-config -nographic -no-reboot -monitor none \
    -serial "file:$CTL/console.log" \
    -kernel "$D/vmlinux" -initrd "$D/initrd.cpio.gz" -append "$APPEND" \
    -drive file="$D/root.ext4",if=virtio,format=raw,snapshot=on,cache=unsafe \
    -fsdev local,id=ctl,path="$CTL",security_model=passthrough \
    -device virtio-9p-pci,fsdev=ctl,mount_tag=ctl \
    -fsdev local,id=host0,path="$SHARE",security_model=passthrough \
    -device virtio-9p-pci,fsdev=host0,mount_tag=host0 \
    "${EXTRA[@]}" \
    < /dev/null > "$CTL/qemu.log" 2>&1
qrc=$?
t1=$(date +%s.%N)

[ "${SDVM_DEBUG:-0}" = 1 ] && { echo "--- guest console ---" >&2; cat "$CTL/console.log" "$CTL/qemu.log" >&2; }
if [ "${SDVM_TIMING:-0}" = 1 ]; then
    {
        echo "sdvm timing: host wall (qemu start..exit) $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s"
        [ -f "$CTL/timing" ] && sed 's/^/sdvm timing: guest /' "$CTL/timing"
        [ -f "$CTL/analyze" ] && sed 's/^/sdvm timing: /' "$CTL/analyze"
    } >&2
fi
[ -f "$CTL/blame" ] && [ "$KEEP" = 1 ] && echo "run.sh: systemd-analyze blame in $CTL/blame" >&2
[ -f "$CTL/stdout" ] && cat "$CTL/stdout"
[ -f "$CTL/stderr" ] && cat "$CTL/stderr" >&2
if [ -s "$CTL/status" ]; then
    exit "$(cat "$CTL/status")"
fi
if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
    echo "run.sh: timeout after ${TIMEOUT}s; last console lines:" >&2
    tail -n 30 "$CTL/console.log" >&2
    exit 124
fi
echo "run.sh: guest did not report an exit status (qemu rc=$qrc); console:" >&2
tail -n 40 "$CTL/console.log" >&2
cat "$CTL/qemu.log" >&2
exit 125
