#!/usr/bin/env bash
# systemd cgroup driver checks: boot the systemd test guest (Debian bookworm,
# systemd 252 as PID 1 on pure cgroup v2, the system D-Bus; qemu TCG) once
# and run there scripts/systemd-vm/check.sh against the release oxrun with
# --systemd-cgroup (scopes, limits via the files and `systemctl show`,
# update, pause/resume, OOM event, exec, ps, delete leaving no unit, bad
# input) and `cri-tool systemd` (containerd 2.1.9 with SystemdCgroup = true
# on our shim: a kubelet-style pod's cri-containerd-<id>.scope units); then
# boots it again with systemd's legacy cgroup v1 layout (SDVM_CGROUP=v1) and
# runs scripts/systemd-vm/check-v1.sh (the driver on cgroup v1). The guest
# is built once and cached in target/systemd-vm. Exits non-zero on
# failure; the last line is "N passed, N failed" (both boots).
#
#   scripts/test-systemd.sh        (any cwd; as root; Debian bookworm)
# Env: OXRUN_BIN (use this oxrun and the containerd-shim-rust-v2 next to
#      it; skip the release build), SDVM_DIR (guest cache, default
#      target/systemd-vm), SDVM_TIMEOUT (VM seconds, 900),
#      SDVM_REFERENCE=1 (also run both parts with runc 1.1.5 / the Go shim:
#      proves the checks), SDVM_CRI=0 (skip the containerd part).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
vm=${SDVM_DIR:-$repo/target/systemd-vm}
here=$repo/scripts/systemd-vm
t0=$SECONDS

finish() { # finish PASSED FAILED MESSAGE
    echo "test-systemd: $3" >&2
    echo "$1 passed, $2 failed"
    exit 1
}

# Packages: the guest build needs debootstrap and e2fsprogs (mkfs.ext4 -d),
# its boot qemu; busybox-static for the containers' rootfs. (qemu from
# bookworm-backports where qemu-utils came from there, as test-cgroup2.sh.)
need=()
command -v qemu-system-x86_64 > /dev/null || need+=(qemu-system-x86)
command -v debootstrap > /dev/null || need+=(debootstrap)
command -v mkfs.ext4 > /dev/null || need+=(e2fsprogs)
command -v xz > /dev/null || need+=(xz-utils)
[ -x /bin/busybox ] || need+=(busybox-static)
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
runc=$(command -v runc || true)
[ -n "$runc" ] || finish 0 1 "no runc (scripts/setup.sh installs it)"

# The binaries: release oxrun + shim, the CRI client (dev profile: test code).
# shellcheck disable=SC1091
[[ -f "${HOME:-/root}/.cargo/env" ]] && . "${HOME:-/root}/.cargo/env"
cri=${SDVM_CRI:-1}
if [ -n "${OXRUN_BIN:-}" ]; then
    bin=$OXRUN_BIN
else
    cargo build --release -p oxrun -p containerd-shim-rust-v2 || finish 0 1 "cargo build --release failed"
    bin=$target/release/oxrun
fi
shim=$(dirname "$bin")/containerd-shim-rust-v2
[ -x "$bin" ] || finish 0 1 "no oxrun binary at $bin"
if [ "$cri" = 1 ]; then
    [ -x "$shim" ] || finish 0 1 "no shim at $shim"
    cargo build -q -p integration --example cri-tool || finish 0 1 "cargo build --example cri-tool failed"
    bash scripts/containerd-matrix.sh || finish 0 1 "containerd-matrix.sh failed"
    bash scripts/mkimages.sh || finish 0 1 "mkimages.sh failed"
    ctd=${OXRUN_TEST_OPT:-/opt/oxrun-test}
    [ -x "$ctd/containerd-2.1.9/usr/bin/containerd" ] || finish 0 1 "no containerd 2.1.9 in $ctd"
    [ -x /usr/lib/cni/bridge ] || finish 0 1 "no CNI plugins in /usr/lib/cni (containernetworking-plugins)"
fi
t_build=$SECONDS

bash "$here/setup.sh" "$vm" || finish 0 1 "building the guest failed"
t_guest=$SECONDS

share=$vm/share
rm -rf "$share"
mkdir -p "$share"
cp "$bin" "$share/oxrun"
cp "$runc" "$share/runc"
cp /bin/busybox "$share/busybox"
cp "$here/check.sh" "$here/check-v1.sh" "$here/checklib.sh" "$here/guest-tests.sh" "$here/rootless-check.sh" "$share/"
ro=()
runtimes=oxrun handlers=
[ "${SDVM_REFERENCE:-0}" = 1 ] && runtimes="oxrun runc"
if [ "$cri" = 1 ]; then
    cp "$shim" "$share/containerd-shim-rust-v2"
    cp "$target/debug/examples/cri-tool" "$share/cri-tool"
    ro=(-r "$ctd" -r /usr/lib/cni)
    handlers=oxrun
    [ "${SDVM_REFERENCE:-0}" = 1 ] && handlers="oxrun runc"
    export OXRUN_CRI_IMAGES=${OXRUN_CRI_IMAGES:-$ctd/images}
fi

set +e
SDVM_DIR=$vm SDVM_TIMING=1 bash "$here/run.sh" -t "${SDVM_TIMEOUT:-900}" "${ro[@]}" "$share" \
    "RUNTIMES='$runtimes' CRI='$handlers' OXRUN_CRI_IMAGES='${OXRUN_CRI_IMAGES:-}' bash ./guest-tests.sh" \
    > "$vm/last.log" 2> "$vm/last.err"
rc=$?
t_v2=$SECONDS
# The second boot: systemd's legacy cgroup v1 layout, check-v1.sh.
SDVM_CGROUP=v1 SDVM_DIR=$vm SDVM_TIMING=1 bash "$here/run.sh" -t "${SDVM_TIMEOUT:-900}" "$share" \
    "CGROUP=v1 RUNTIMES='$runtimes' bash ./guest-tests.sh" \
    > "$vm/last-v1.log" 2> "$vm/last-v1.err"
rc1=$?
set -e
cat "$vm/last.log"
echo "== second boot: cgroup v1 (SDVM_CGROUP=v1)"
cat "$vm/last-v1.log"
grep -hv '^sdvm timing' "$vm/last.err" "$vm/last-v1.err" | sed 's/^/guest stderr: /' >&2 || true
grep -h '^sdvm timing' "$vm/last.err" "$vm/last-v1.err" >&2 || true
echo "test-systemd: build $((t_build - t0)) s, guest setup $((t_guest - t_build)) s, VM run v2 $((t_v2 - t_guest)) s, v1 $((SECONDS - t_v2)) s, total $((SECONDS - t0)) s" >&2
sums=()
for log in "$vm/last.log" "$vm/last-v1.log"; do
    sum=$(tail -n 1 "$log" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
    [ -n "$sum" ] || finish 0 1 "the guest did not finish ($(basename "$log"); run.sh exit $rc/$rc1)"
    sums+=("$sum")
done
p=$((${sums[0]% *} + ${sums[1]% *})) f=$((${sums[0]#* } + ${sums[1]#* }))
echo "$p passed, $f failed"
[ "$rc" -eq 0 ] && [ "$rc1" -eq 0 ] && [ "$f" -eq 0 ]
