#!/bin/bash
# run-in-vm.sh - boot a throwaway Linux guest with a pure cgroup v2 hierarchy,
# share a host directory into it over 9p and run a command there as root.
#
#   usage: run-in-vm.sh [-m MEM_MB] [-c CPUS] [-t TIMEOUT_S] [-u] [-k] SHARE_DIR CMD [ARGS...]
#
#   -u          also mount the host's /usr read-only at /usr in the guest (plus the
#               /lib64 and /lib/x86_64-linux-gnu links), so dynamically linked host
#               binaries (glibc, e.g. cargo test executables) run unchanged.
#   -k          keep the control directory (console log etc.) in /tmp/vm2-ctl.*
#
#   SHARE_DIR   host directory, mounted read-write in the guest at /mnt/host AND at
#               its own absolute host path (so absolute paths keep working); the
#               command starts with that directory as its cwd.
#   CMD ARGS    run by /bin/sh in the guest (busybox ash; busybox applets on PATH).
#               A single argument is used as a shell script ("sh -c" semantics);
#               several arguments are quoted and run as one command.
#
# The guest's stdout/stderr are copied to this script's stdout/stderr and the
# script exits with the command's exit status.  Exit codes of our own:
#   124 = timeout, 125 = VM failed to boot/report.
# Env:  VM_DIR (where setup.sh put the guest; default <repo>/target/cgroup2-vm),
#       VM_KERNEL, VM_INITRD (default $VM_DIR/vmlinux, $VM_DIR/initramfs.cpio.gz),
#       VM_ACCEL (tcg|kvm; kvm does not work on PVM hosts),
#       VM_APPEND (extra kernel args), VM_DEBUG=1 (show the guest console on stderr).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
MEM=1024 CPUS=1 TIMEOUT=300 KEEP=0 HOSTUSR=0
while getopts "m:c:t:uk" o; do
    case $o in
        m) MEM=$OPTARG ;; c) CPUS=$OPTARG ;; t) TIMEOUT=$OPTARG ;; k) KEEP=1 ;; u) HOSTUSR=1 ;;
        *) echo "usage: $0 [-m MB] [-c CPUS] [-t SECS] [-u] [-k] SHARE_DIR CMD [ARGS...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { echo "usage: $0 [-m MB] [-c CPUS] [-t SECS] [-u] [-k] SHARE_DIR CMD [ARGS...]" >&2; exit 2; }
SHARE=$(cd "$1" && pwd) || exit 2
shift

VM_DIR=${VM_DIR:-$HERE/../../target/cgroup2-vm}
KERNEL=${VM_KERNEL:-$VM_DIR/vmlinux}
INITRD=${VM_INITRD:-$VM_DIR/initramfs.cpio.gz}
[ -f "$KERNEL" ] && [ -f "$INITRD" ] || { echo "run-in-vm: no guest in $VM_DIR (run setup.sh first)" >&2; exit 125; }
ACCEL=${VM_ACCEL:-tcg}
QEMU=${QEMU:-qemu-system-x86_64}

CTL=$(mktemp -d /tmp/vm2-ctl.XXXXXX)
trap '[ "$KEEP" = 1 ] && echo "run-in-vm: kept $CTL" >&2 || rm -rf "$CTL"' EXIT
if [ $# -eq 1 ]; then
    printf '%s\n' "$1" > "$CTL/cmd.sh"
else
    printf '%q ' "$@" > "$CTL/cmd.sh"; echo >> "$CTL/cmd.sh"
fi
printf '%s' "$SHARE" > "$CTL/hostpath"
printf '%s' "$SHARE" > "$CTL/cwd"

case $ACCEL in
    kvm) ACCEL_ARGS=(-accel kvm -cpu host,-arch-capabilities) ;;
    *)   ACCEL_ARGS=(-accel tcg,thread=multi,tb-size=128 -cpu ${VM_CPU:-max}) ;;
esac

APPEND="console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check tsc=reliable \
cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 ${VM_APPEND:-}"

MACHINE=${VM_MACHINE:-pc}
case $MACHINE in
    microvm)
        # no PCI / no HPET: give the kernel a TSC frequency so it does not hang
        # calibrating; virtio-mmio devices are found through ACPI (LNRO0005).
        MACH_ARGS=(-M microvm,x-option-roms=off,rtc=off)
        APPEND="$APPEND tsc_early_khz=2000000"
        NINEP=virtio-9p-device ;;
    *)
        MACH_ARGS=(-M pc)
        NINEP=virtio-9p-pci ;;
esac

EXTRA=()
if [ "$HOSTUSR" = 1 ]; then
    EXTRA=(-fsdev local,id=hostusr,path=/usr,security_model=passthrough,readonly=on
           -device $NINEP,fsdev=hostusr,mount_tag=hostusr)
fi

CONSOLE=$CTL/console.log
timeout -k 5 "$TIMEOUT" "$QEMU" "${ACCEL_ARGS[@]}" "${MACH_ARGS[@]}" \
    -m "$MEM" -smp "$CPUS" -nodefaults -no-user-config -nographic -no-reboot \
    -serial "file:$CONSOLE" -monitor none \
    -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
    -fsdev local,id=ctl,path="$CTL",security_model=passthrough \
    -device $NINEP,fsdev=ctl,mount_tag=ctl \
    -fsdev local,id=host0,path="$SHARE",security_model=passthrough \
    -device $NINEP,fsdev=host0,mount_tag=host0 \
    "${EXTRA[@]}" \
    </dev/null >"$CTL/qemu.log" 2>&1
qrc=$?

[ "${VM_DEBUG:-0}" = 1 ] && { echo "--- guest console ---" >&2; cat "$CONSOLE" >&2; cat "$CTL/qemu.log" >&2; }
[ -f "$CTL/stdout" ] && cat "$CTL/stdout"
[ -f "$CTL/stderr" ] && cat "$CTL/stderr" >&2
if [ -s "$CTL/status" ]; then
    exit "$(cat "$CTL/status")"
fi
if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
    echo "run-in-vm: timeout after ${TIMEOUT}s" >&2; exit 124
fi
echo "run-in-vm: guest did not report an exit status (qemu rc=$qrc); console:" >&2
tail -n 40 "$CONSOLE" >&2; cat "$CTL/qemu.log" >&2
exit 125
