#!/bin/bash
# setup.sh - build the systemd test guest used by run.sh: Debian bookworm with
# systemd 252 as PID 1 on a pure cgroup v2 hierarchy and the system D-Bus
# (dbus-daemon), booted by qemu (TCG) from a `mkfs.ext4 -d` image (no loop
# mounts) with a busybox initramfs and Debian's kernel as a PVH vmlinux.
# Idempotent and cached: each step runs again only when its inputs changed
# (a content hash of this script and guest/*, the package list); with
# nothing changed it takes well under a second and touches no network.
#
#   usage: setup.sh [OUT_DIR]     (as root; Debian bookworm x86_64 host)
#   OUT_DIR default: $SDVM_DIR, else <repo>/target/systemd-vm
#   env:   SDVM_SUITE   guest suite (default bookworm)
#          SDVM_EXTRA_PKGS  more guest packages, comma-separated (re-runs debootstrap)
#          SDVM_MIRROR  Debian mirror (default: the first Debian, non-security
#                       mirror of the host's /etc/apt/sources.list*)
#          SDVM_FREE_MB free space in the image (default 768)
#          CG2_VM_DIR   scripts/cgroup2-vm's cache (default <repo>/target/cgroup2-vm):
#                       its kernel .deb is reused when it is the same package
#   needs: debootstrap, e2fsprogs (mkfs.ext4 -d), xz-utils, busybox-static,
#          dpkg, apt (and qemu-system-x86 for run.sh)
#   result in OUT_DIR: vmlinux, initrd.cpio.gz, root.ext4 (run.sh opens it
#          with snapshot=on), rootfs/ (kept for incremental rebuilds)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${1:-${SDVM_DIR:-$REPO/target/systemd-vm}}
SUITE=${SDVM_SUITE:-bookworm}
# libyajl2: crun (reference runtime). libseccomp2 (runc) and libcap2 come
# with systemd.
PKGS=systemd,systemd-sysv,dbus,util-linux,procps,iproute2,libyajl2${SDVM_EXTRA_PKGS:+,$SDVM_EXTRA_PKGS}
[ "$(id -u)" = 0 ] || { echo "setup.sh: run as root (debootstrap, mknod)" >&2; exit 1; }
for t in debootstrap mkfs.ext4 xz apt-get dpkg; do
    command -v $t > /dev/null ||
        { echo "setup.sh: missing $t (apt-get install debootstrap e2fsprogs xz-utils)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "setup.sh: missing /bin/busybox (busybox-static)" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$OUT"
t0=$(date +%s.%N)
since() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
log() { echo "[systemd-vm setup] $*" >&2; }

# ---- 1. kernel: Debian's linux-image, unpacked (not installed) -------------
kpkg_name() { apt-cache depends linux-image-amd64 2> /dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
KPKG=${SDVM_KPKG:-$(kpkg_name)}
if [ -z "$KPKG" ]; then
    apt-get update -qq
    KPKG=$(kpkg_name)
fi
[ -n "$KPKG" ] || { log "cannot find the kernel package behind linux-image-amd64"; exit 1; }
mkdir -p debs
if ! ls debs/"${KPKG}"_*.deb > /dev/null 2>&1; then
    cg2=${CG2_VM_DIR:-$REPO/target/cgroup2-vm}
    if ls "$cg2"/debs/"${KPKG}"_*.deb > /dev/null 2>&1; then
        log "kernel: reusing $(ls "$cg2"/debs/"${KPKG}"_*.deb)"
        cp "$cg2"/debs/"${KPKG}"_*.deb debs/
    else
        chmod 777 debs # apt-get download writes as _apt when it can
        (cd debs && apt-get download "$KPKG" >&2)
    fi
fi
KDEB=$(ls debs/"${KPKG}"_*.deb | head -1)
if [ ! -s vmlinux ] || [ "$(cat .kernel-done 2> /dev/null)" != "$KDEB" ]; then
    rm -rf kpkg && mkdir kpkg && dpkg -x "$KDEB" kpkg
    KVER=$(ls kpkg/lib/modules)
    # bzImage -> ELF vmlinux: qemu boots it through PVH and the guest skips
    # the XZ decompression (~2.5 s under TCG)
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' kpkg/boot/vmlinuz-"$KVER" | head -1 | cut -d: -f1)
    tail -c +$((off + 1)) kpkg/boot/vmlinuz-"$KVER" | xz -dc > vmlinux.tmp 2> /dev/null || true # trailing data is expected
    [ "$(head -c 4 vmlinux.tmp | od -An -c | tr -d ' ')" = "177ELF" ] || { log "vmlinux extraction failed"; exit 1; }
    mv vmlinux.tmp vmlinux
    echo "$KDEB" > .kernel-done
    rm -f initrd.cpio.gz
fi
KVER=$(ls kpkg/lib/modules)
log "kernel $KPKG ($KVER)"

# ---- 2. root file system: debootstrap minbase + systemd + dbus -------------
if [ "$(cat rootfs/.sdvm-debootstrap-done 2> /dev/null)" != "$SUITE $PKGS" ]; then
    find_mirror() {
        local f
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
            [ -r "$f" ] || continue
            case $f in
            *.sources) awk 'tolower($1)=="uris:"{for(i=2;i<=NF;i++)print $i}' "$f" ;;
            *) awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /^[a-z]+:\/\//){print $i; break}}' "$f" ;;
            esac
        done | grep -v -- '-security' | grep -E '/debian/?$' | head -n1
    }
    MIRROR=${SDVM_MIRROR:-$(find_mirror)}
    [ -n "$MIRROR" ] || { log "no Debian mirror in /etc/apt/sources.list*; set SDVM_MIRROR"; exit 1; }
    log "debootstrap $SUITE from $MIRROR: $PKGS"
    rm -rf rootfs
    debootstrap --variant=minbase --include="$PKGS" "$SUITE" rootfs "$MIRROR" > debootstrap.log 2>&1 ||
        { tail -n 20 debootstrap.log >&2; log "debootstrap failed (log: $OUT/debootstrap.log)"; exit 1; }
    echo "$SUITE $PKGS" > rootfs/.sdvm-debootstrap-done
    rm -f rootfs/.sdvm-custom-done
fi

# ---- 3. customise the rootfs (files from guest/) ----------------------------
custom_key=$( (cat "$HERE/setup.sh" "$HERE"/guest/*; echo "$KVER") | sha256sum | cut -c1-16)
if [ "$(cat rootfs/.sdvm-custom-done 2> /dev/null)" != "$custom_key" ]; then
    R=rootfs
    echo sdvm > $R/etc/hostname
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tsdvm\n::1\tlocalhost ip6-localhost ip6-loopback\n' > $R/etc/hosts
    : > $R/etc/fstab
    mkdir -p $R/mnt/ctl $R/mnt/host $R/etc/systemd/system $R/etc/systemd/journald.conf.d
    install -m 755 "$HERE/guest/sdvm-run" $R/usr/local/sbin/sdvm-run
    install -m 644 "$HERE/guest/sdvm.target" "$HERE/guest/sdvm-run.service" $R/etc/systemd/system/
    install -m 644 "$HERE/guest/journald-sdvm.conf" $R/etc/systemd/journald.conf.d/sdvm.conf
    mkdir -p $R/etc/systemd/system/sdvm.target.wants
    ln -sfn ../sdvm-run.service $R/etc/systemd/system/sdvm.target.wants/sdvm-run.service
    ln -sfn sdvm.target $R/etc/systemd/system/default.target
    # mask units a throwaway test VM does not need (guest/masked-units); old masks first
    find $R/etc/systemd/system -maxdepth 1 -lname /dev/null -delete
    while read -r u; do
        [ -n "$u" ] && [ "${u#\#}" = "$u" ] && ln -sfn /dev/null $R/etc/systemd/system/"$u"
    done < "$HERE/guest/masked-units"
    # no getty on the serial console: run.sh owns it
    ln -sfn /dev/null $R/etc/systemd/system/serial-getty@ttyS0.service
    ln -sfn /dev/null $R/etc/systemd/system/getty@tty1.service
    # debootstrap made a machine-id: no first-boot work (all guests share it)
    [ -s $R/etc/machine-id ] || echo 5d7b1c0e9a6f4e3c8b2a1f0e9d8c7b6a > $R/etc/machine-id
    # shrink: documentation, translations, apt caches
    rm -rf $R/usr/share/doc/* $R/usr/share/man/* $R/usr/share/info/* $R/usr/share/locale/* \
        $R/var/cache/apt/*.bin $R/var/cache/apt/archives/*.deb $R/var/lib/apt/lists/*_* $R/var/log/*.log
    echo "$custom_key" > rootfs/.sdvm-custom-done
    rm -f root.ext4
fi

# ---- 4. disk image without loop mounts: mkfs.ext4 -d ------------------------
if [ ! -s root.ext4 ]; then
    used=$(du -sm --apparent-size rootfs | cut -f1)
    size=$((used * 13 / 10 + ${SDVM_FREE_MB:-768})) # room for the checks' writes (snapshot=on)
    rm -f root.ext4.tmp && truncate -s "${size}M" root.ext4.tmp
    mkfs.ext4 -q -F -L sdvmroot -O ^has_journal -E root_owner=0:0 -d rootfs root.ext4.tmp
    mv root.ext4.tmp root.ext4
fi

# ---- 5. initramfs: busybox-static + the modules -----------------------------
# Load order = dependency order (the .deb has no modules.dep). ext4 needs
# crc32c_generic first (its softdep). overlay: containerd's snapshotter;
# bridge (stp, llc) and veth: the CNI bridge plugin.
MODULES="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
    drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk
    lib/crc16 fs/mbcache fs/jbd2/jbd2 crypto/crc32c_generic fs/ext4/ext4
    net/9p/9pnet net/9p/9pnet_virtio fs/netfs/netfs fs/fscache/fscache fs/9p/9p
    fs/overlayfs/overlay net/llc/llc net/802/stp net/bridge/bridge drivers/net/veth"
initrd_key=$( (cat "$HERE/guest/initrd-init" /bin/busybox; echo "$KVER $MODULES") | sha256sum | cut -c1-16)
if [ ! -s initrd.cpio.gz ] || [ "$(cat .initrd-done 2> /dev/null)" != "$initrd_key" ]; then
    rm -rf initrd && mkdir -p initrd/{bin,dev,proc,sys,newroot,lib/modules}
    cp /bin/busybox initrd/bin/busybox
    for a in sh mount umount mkdir insmod sleep cat switch_root poweroff echo ls; do ln -sf busybox initrd/bin/$a; done
    mknod -m 600 initrd/dev/console c 5 1
    mknod -m 666 initrd/dev/null c 1 3
    M=kpkg/lib/modules/$KVER/kernel
    for m in $MODULES; do
        cp "$M/$m.ko" initrd/lib/modules/
        basename "$m" >> initrd/lib/modules/order
    done
    install -m 755 "$HERE/guest/initrd-init" initrd/init
    (cd initrd && find . | ./bin/busybox cpio -o -H newc 2> /dev/null) | gzip -1 > initrd.cpio.gz
    rm -rf initrd
    echo "$initrd_key" > .initrd-done
fi
log "ready in $(since) s: image $(du -h --apparent-size root.ext4 | cut -f1) apparent," \
    "$(du -h root.ext4 | cut -f1) allocated; rootfs $(du -sh rootfs | cut -f1); initrd $(du -h initrd.cpio.gz | cut -f1)"
