#!/usr/bin/env bash
# Boots a pure cgroup v2 Linux under QEMU (TCG) with cgview inside and writes the guest's console to a file.
#   tests/vm/boot.sh <cgview binary> <console log>
# Environment: CGVIEW_VM_INIT, the guest's /init (default tests/vm/guest-init.sh); CGVIEW_VM_MACHINE, QEMU's
# memory, CPU and NUMA options (default "-m 1024 -smp 2"); CGVIEW_VM_PROGRAMS, more host programs copied to
# the guest's /bin with their libraries, each as PROGRAM:DEBIAN-PACKAGE (installed when the program is
# missing), e.g. "numactl:numactl lscpu:util-linux".
# Installs Debian's qemu-system-x86, linux-image-amd64, busybox-static and cpio when missing. Exits non-zero
# (loudly) when the VM cannot be built or does not finish; what the guest reports is asserted by the test
# that boots it (tests/v2_vm.rs, tests/numa_vm.rs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="$(realpath "$1")"
console_log="$2"
: "${CGVIEW_VM_TIMEOUT:=170}"
: "${CGVIEW_VM_INIT:=$here/guest-init.sh}"
: "${CGVIEW_VM_MACHINE:=-m 1024 -smp 2}"
: "${CGVIEW_VM_PROGRAMS:=}"

kernel_version() {
  local v
  for v in $(ls /lib/modules 2>/dev/null | sort -V -r); do
    if [ -f "/boot/vmlinuz-$v" ] && [ -f "/lib/modules/$v/kernel/fs/fuse/fuse.ko" ]; then
      echo "$v"
      return
    fi
  done
}

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[ -n "$(kernel_version)" ] || missing+=(linux-image-amd64)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing+=(busybox-static)
command -v cpio >/dev/null || missing+=(cpio)
command -v xz >/dev/null || missing+=(xz-utils)
for wanted in $CGVIEW_VM_PROGRAMS; do
  command -v "${wanted%%:*}" >/dev/null || missing+=("${wanted#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "vm: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
version="$(kernel_version)"
[ -n "$version" ] || { echo "vm: no kernel with fuse.ko under /boot and /lib/modules" >&2; exit 1; }
programs=()
for wanted in $CGVIEW_VM_PROGRAMS; do
  path="$(command -v "${wanted%%:*}")" || { echo "vm: ${wanted%%:*} is not installed" >&2; exit 1; }
  programs+=("$path")
done

work="$(mktemp -d /tmp/cgview-vm.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,mnt,modules,lib64,lib/x86_64-linux-gnu}
cp /bin/busybox "$root/bin/busybox"
cp "$binary" "$root/cgview"
# busybox's unshare has no cgroup namespace option; util-linux's does.
cp "$(command -v unshare)" "$root/bin/unshare-util"
for program in "${programs[@]}"; do
  cp "$program" "$root/bin/$(basename "$program")"
done
# They are dynamically linked against glibc: bring their libraries and loader along.
for program in "$binary" "$(command -v unshare)" "${programs[@]}"; do
  ldd "$program" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/lib/ {print $1}'
done | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
modules="/lib/modules/$version/kernel"
for module in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
    drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/block/virtio_blk fs/fuse/fuse; do
  name="$(basename "$module")"
  if [ -f "$modules/$module.ko" ]; then
    cp "$modules/$module.ko" "$root/modules/$name.ko"
  elif [ -f "$modules/$module.ko.xz" ]; then
    xz -dc "$modules/$module.ko.xz" >"$root/modules/$name.ko"
  elif [ -f "$modules/$module.ko.zst" ]; then
    zstd -qdc "$modules/$module.ko.zst" >"$root/modules/$name.ko"
  else
    echo "vm: $module.ko not found for $version" >&2
    exit 1
  fi
done
cp "$CGVIEW_VM_INIT" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"
truncate -s 64M "$work/data.img" "$work/swap.img"

echo "vm: booting Linux $version (cgroup v2 only) under TCG" >&2
status=0
timeout "$CGVIEW_VM_TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max $CGVIEW_VM_MACHINE -nographic -no-reboot \
  -kernel "/boot/vmlinuz-$version" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 quiet loglevel=1 panic=-1" -nic none \
  -drive "file=$work/data.img,if=virtio,format=raw" -drive "file=$work/swap.img,if=virtio,format=raw" \
  </dev/null >"$console_log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  echo "vm: qemu exited with $status (124 = timed out after ${CGVIEW_VM_TIMEOUT}s); console follows" >&2
  tail -n 60 "$console_log" >&2
  exit 1
fi
