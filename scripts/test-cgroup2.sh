#!/usr/bin/env bash
# Pure cgroup v2 checks: boot Debian's kernel in a qemu (TCG) guest with
# cgroup_no_v1=all and run scripts/cgroup2-vm/check.sh there against the
# release oxrun (limits read back from the v2 files, the eBPF device filter,
# pause/resume via cgroup.freeze, update, events with an OOM kill, ps,
# delete, bad input). The guest (kernel + initramfs) is built once and
# cached in target/cgroup2-vm. Exits non-zero on failure; the last line is
# "N passed, N failed".
#
#   scripts/test-cgroup2.sh        (any cwd; as root; Debian bookworm)
# Env: OXRUN_BIN (use this binary, skip the build), CG2_VM_DIR (guest
#      cache, default target/cgroup2-vm), CG2_TIMEOUT (VM seconds, 240).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
vm=${CG2_VM_DIR:-$repo/target/cgroup2-vm}
here=$repo/scripts/cgroup2-vm

finish() { # finish PASSED FAILED MESSAGE
    echo "test-cgroup2: $3" >&2
    echo "$1 passed, $2 failed"
    exit 1
}

# Packages: qemu (bookworm's, or backports' where a newer qemu-utils is
# installed), busybox-static, xz, apt's download of the kernel .deb.
need=()
command -v qemu-system-x86_64 > /dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v xz > /dev/null || need+=(xz-utils)
# Where qemu-utils came from bookworm-backports (as on this project's
# machines), qemu-system-x86 must come from there too: add that suite on the
# machine's own Debian mirror if apt does not know it yet.
add_backports() {
    local list=/etc/apt/sources.list.d/bookworm-backports.list uri
    [ -e "$list" ] && return 0
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2> /dev/null)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2> /dev/null)
    [ -n "$uri" ] || return 1
    echo "deb $uri bookworm-backports main" > "$list"
    apt-get update -qq
}
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" ||
        { add_backports && apt-get install -y -qq --no-install-recommends -t bookworm-backports "${need[@]}"; } ||
        finish 0 1 "cannot install ${need[*]}"
fi

if [ -n "${OXRUN_BIN:-}" ]; then
    bin=$OXRUN_BIN
else
    # shellcheck disable=SC1091
    [[ -f "${HOME:-/root}/.cargo/env" ]] && . "${HOME:-/root}/.cargo/env"
    cargo build --release -p oxrun || finish 0 1 "cargo build --release failed"
    bin=$repo/target/release/oxrun
fi
[ -x "$bin" ] || finish 0 1 "no oxrun binary at $bin"

if [ ! -s "$vm/vmlinux" ] || [ ! -s "$vm/initramfs.cpio.gz" ] ||
    [ "$here/guest/init2" -nt "$vm/initramfs.cpio.gz" ] || [ "$here/guest/init" -nt "$vm/initramfs.cpio.gz" ]; then
    bash "$here/setup.sh" "$vm" || finish 0 1 "building the guest failed"
fi

share=$vm/share
rm -rf "$share"
mkdir -p "$share"
cp "$bin" "$share/oxrun"
cp "$here/check.sh" "$share/check.sh"

# -u: the host's /usr in the guest, for the glibc-linked oxrun.
set +e
VM_DIR=$vm bash "$here/run-in-vm.sh" -u -m 512 -t "${CG2_TIMEOUT:-240}" "$share" sh ./check.sh \
    > "$vm/last.log" 2> "$vm/last.err"
rc=$?
set -e
cat "$vm/last.log"
[ -s "$vm/last.err" ] && sed 's/^/guest stderr: /' "$vm/last.err" >&2
if ! tail -n 1 "$vm/last.log" | grep -Eq '^[0-9]+ passed, [0-9]+ failed$'; then
    finish 0 1 "the guest did not finish (run-in-vm exit $rc)"
fi
exit "$rc"
