#!/usr/bin/env bash
# Boots Debian's kernel (which has pktgen as a module) in QEMU with an initramfs holding busybox,
# the given pktgen binary and ./init, which runs `pktgen tx --mode kernel` against the kernel's
# pktgen over a veth pair inside the VM and prints what it saw. Used by tests/kernel_vm.rs.
#
#   boot.sh fetch WORKDIR             # download and unpack the kernel only (CI's setup)
#   boot.sh run WORKDIR PKTGEN_BIN    # fetch if needed, build the initramfs, boot; output on stdout
#
# The VM has no network card (-nic none): its traffic never leaves it. Software emulation
# (TCG), so no /dev/kvm is needed; a boot takes ~10 s. Nothing is installed on the host: the
# kernel package is downloaded with `apt-get download` and unpacked under WORKDIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: boot.sh fetch|run WORKDIR [PKTGEN_BIN]}
work=${2:?usage: boot.sh fetch|run WORKDIR [PKTGEN_BIN]}
mkdir -p "$work"
work=$(cd "$work" && pwd)

fetch() {
    # The package linux-image-amd64 points at (e.g. linux-image-6.1.0-57-amd64).
    local pkg
    # (`|| true`: with no package lists apt-cache fails, and the message below says so.)
    pkg=${KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-/ { print $2; exit }' || true)}
    if [ -z "$pkg" ]; then
        echo "boot.sh: no kernel package known to apt (linux-image-amd64); run apt-get update" >&2
        return 1
    fi
    local kdir=$work/$pkg
    if [ -f "$kdir/vmlinuz" ] && [ -f "$kdir/pktgen.ko" ] && [ -f "$kdir/veth.ko" ]; then
        echo "$kdir"
        return 0
    fi
    mkdir -p "$kdir/deb"
    (cd "$kdir/deb" && ls ./*.deb >/dev/null 2>&1 || apt-get download "$pkg" >&2)
    # Only the three files needed (the package unpacks to ~480 MB).
    local deb
    deb=$(ls "$kdir"/deb/*.deb | head -n 1)
    rm -rf "$kdir/x" && mkdir -p "$kdir/x"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir/x" --wildcards \
        './boot/vmlinuz-*' '*/kernel/net/core/pktgen.ko*' '*/kernel/drivers/net/veth.ko*'
    cp "$(find "$kdir/x" -name 'vmlinuz-*' | head -n 1)" "$kdir/vmlinuz"
    for m in pktgen veth; do
        local f
        f=$(find "$kdir/x" -name "$m.ko*" | head -n 1)
        case "$f" in
            *.ko) cp "$f" "$kdir/$m.ko" ;;
            *.ko.xz) xz -dc "$f" > "$kdir/$m.ko" ;;
            *.ko.zst) zstd -qdc "$f" > "$kdir/$m.ko" ;;
            *) echo "boot.sh: no $m module in $deb" >&2; return 1 ;;
        esac
    done
    rm -rf "$kdir/x" "$kdir/deb"
    echo "$kdir"
}

run() {
    local bin=${1:?PKTGEN_BIN}
    local kdir
    # (A command substitution does not stop the script on failure: check.)
    kdir=$(fetch) || exit 1
    local root=$work/initramfs
    rm -rf "$root"
    mkdir -p "$root"/{bin,proc,sys,dev,tmp,modules}
    local bb
    bb=$(command -v busybox)
    cp "$bb" "$root/bin/busybox"
    for a in sh mount insmod cat sleep echo ls grep seq poweroff; do
        ln -s busybox "$root/bin/$a"
    done
    cp "$bin" "$root/bin/pktgen"
    strip "$root/bin/pktgen" 2>/dev/null || true
    # busybox's `ip` cannot make a veth pair: iproute2's.
    local ipbin
    ipbin=$(command -v ip)
    cp -L "$ipbin" "$root/bin/ip"
    # Both are linked against the host's libc: their libraries and loader at the same paths.
    for l in $(ldd "$bin" "$ipbin" | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
        mkdir -p "$root$(dirname "$l")"
        cp -L "$l" "$root$l"
    done
    cp "$kdir/pktgen.ko" "$kdir/veth.ko" "$root/modules/"
    cp "$here/init" "$root/init"
    chmod +x "$root/init"
    (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"
    # -no-reboot + panic=-1: a kernel panic ends QEMU instead of looping; the timeout bounds a hang.
    timeout 300 qemu-system-x86_64 -machine q35 -m 512 -smp 2 -nographic -no-reboot -nic none \
        -kernel "$kdir/vmlinuz" -initrd "$work/initrd.gz" \
        -append "console=ttyS0 quiet panic=-1" </dev/null
}

case "$cmd" in
    fetch) fetch ;;
    run) run "${3:?PKTGEN_BIN}" ;;
    *) echo "usage: boot.sh fetch|run WORKDIR [PKTGEN_BIN]" >&2; exit 2 ;;
esac
