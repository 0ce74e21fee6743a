#!/bin/bash
# setup.sh - build the pure cgroup v2 guest used by run-in-vm.sh: Debian's
# kernel (.deb fetched with `apt-get download`, unpacked, never installed)
# turned into a PVH-bootable vmlinux, and a busybox initramfs with the
# virtio/9p modules and guest/init{,2}.
#
#   usage: setup.sh [OUT_DIR]      (default <repo>/target/cgroup2-vm)
#   needs: busybox-static xz-utils dpkg apt (and qemu-system-x86 to run it)
#   result: OUT_DIR/vmlinux, OUT_DIR/initramfs.cpio.gz (about 10 s)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../../target/cgroup2-vm}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$OUT"

kpkg_name() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}
KPKG=${KPKG:-$(kpkg_name)}
if [ -z "$KPKG" ]; then
    apt-get update -qq
    KPKG=$(kpkg_name)
fi
[ -n "$KPKG" ] || { echo "setup.sh: cannot find the kernel package behind linux-image-amd64" >&2; exit 1; }
echo "kernel package: $KPKG"
mkdir -p debs
# apt-get download writes as _apt when it can: let it.
chmod 777 debs
( cd debs && { ls "${KPKG}"_*.deb >/dev/null 2>&1 || apt-get download "$KPKG"; } )
rm -rf kpkg && mkdir kpkg && dpkg -x debs/"${KPKG}"_*.deb kpkg
KVER=$(ls kpkg/lib/modules)
cp kpkg/boot/vmlinuz-"$KVER" vmlinuz
# bzImage -> vmlinux ELF: PVH direct boot skips the in-guest XZ
# decompression (~2.5 s under TCG).
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' vmlinuz | head -1 | cut -d: -f1)
tail -c +$((off + 1)) vmlinuz | xz -dc > vmlinux 2>/dev/null || true # trailing data after the xz stream is expected
[ "$(head -c 4 vmlinux | od -An -c | tr -d ' ')" = "177ELF" ] || { echo "setup.sh: vmlinux extraction failed" >&2; exit 1; }

rm -rf initramfs-src && mkdir -p initramfs-src && cd initramfs-src
mkdir -p bin sbin dev proc sys tmp run root etc mnt/host lib/modules usr
cp /bin/busybox bin/busybox # busybox-static
for a in $(bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox bin/"$a"; done
mknod -m 600 dev/console c 5 1
mknod -m 666 dev/null c 1 3
M=../kpkg/lib/modules/$KVER/kernel
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
    drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/virtio/virtio_mmio \
    net/9p/9pnet net/9p/9pnet_virtio fs/netfs/netfs fs/fscache/fscache fs/9p/9p; do
    cp "$M/$m.ko" lib/modules/
done
cp "$HERE"/guest/init "$HERE"/guest/init2 . && chmod 755 init init2
find . | bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 > ../initramfs.cpio.gz
cd ..
rm -rf kpkg initramfs-src vmlinuz
ls -la vmlinux initramfs.cpio.gz
