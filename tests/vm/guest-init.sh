#!/bin/busybox sh
# /init of the pure cgroup v2 test VM. It only sets things up and prints what it reads, one
# `CHECK <name> <value>` line each (newlines in a value become '|'); the host asserts (tests/v2_vm.rs).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for module in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk fuse; do
  insmod /modules/$module.ko || echo "CHECK error insmod-$module"
done
for i in $(seq 50); do [ -b /dev/vdb ] && [ -e /dev/fuse ] && break; sleep 0.1; done

echo
check() { echo "CHECK $1 $(echo "$2" | tr '\n' '|')"; }
# inside CGROUP COMMAND: runs COMMAND in a shell that first moves itself into CGROUP.
inside() { sh -c "echo \$\$ > $1/cgroup.procs && $2"; }
# container CGROUP COMMAND: like a runtime, a new mount + pid namespace with cgview's files bound over
# /proc and /sys, then COMMAND.
container() {
  inside "$1" "unshare -m -p -f sh -c 'for f in meminfo cpuinfo uptime diskstats vmstat; do mount --bind $MNT/proc/\$f /proc/\$f; done; \
    mount --bind $MNT/sys/devices/system/cpu /sys/devices/system/cpu; $2'"
}
field() { grep "^$1:" | awk '{print $2}'; }
# limit VALUE FILE: writes a cgroup limit, then waits out cgview's snapshot lifetime (README, "Caching") so
# the next read shows it.
limit() { echo "$1" > "$2"; sleep 0.6; }

CONTROLLERS="+memory +cpu +cpuset +io +pids"
R=/sys/fs/cgroup
echo "$CONTROLLERS" > $R/cgroup.subtree_control
K=$R/kubepods.slice
B=$K/kubepods-burstable.slice
P=$B/kubepods-burstable-pod5f3e9c1a_7d2b_4c1e_9a0f_2b8c6d4e1f00.slice
C=$P/cri-containerd-9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c.scope
O=$R/other.slice/other.scope
S=$R/system.slice/cgview.service
mkdir -p $C $O $S
for d in $K $B $P $R/other.slice $R/system.slice; do echo "$CONTROLLERS" > $d/cgroup.subtree_control; done
check layout "$(cat $R/cgroup.controllers)"

# Two daemons, each in a private cgroup namespace as in a pod: one joins the host's namespace at start,
# the other resolves paths through the mount's root.
mkdir -p /mnt/cgview /mnt/cgview-ns
inside $S "exec unshare-util --cgroup /cgview --log info mount /mnt/cgview >/tmp/cgview.log 2>&1" &
inside $S "exec unshare-util --cgroup /cgview --log info mount --keep-cgroup-namespace /mnt/cgview-ns >/tmp/cgview-ns.log 2>&1" &
for i in $(seq 100); do
  [ -r /mnt/cgview/proc/meminfo ] && [ -r /mnt/cgview-ns/proc/meminfo ] && break
  sleep 0.2
done
# The pid whose command line contains $1.
pid_of() { for p in /proc/[0-9]*; do tr '\0' ' ' <$p/cmdline 2>/dev/null | grep -q -- "$1" && basename $p; done; }
JOINING=$(pid_of 'mount /mnt/cgview ')
KEEPING=$(pid_of 'mount --keep-cgroup-namespace')
check cgroupns.init "$(readlink /proc/1/ns/cgroup)"
check cgroupns.joining-daemon "$(readlink /proc/$JOINING/ns/cgroup) $(cat /proc/$JOINING/comm)"
check cgroupns.keeping-daemon "$(readlink /proc/$KEEPING/ns/cgroup) $(cat /proc/$KEEPING/comm)"
MNT=/mnt/cgview
check host-memtotal "$(field MemTotal </proc/meminfo)"

# ---- meminfo ----
limit 536870912 $C/memory.max
limit 268435456 $P/memory.max
check mem.pod-lower.mount "$(inside $C "grep ^MemTotal: $MNT/proc/meminfo")"
check mem.pod-lower.mount-ns "$(inside $C "grep ^MemTotal: /mnt/cgview-ns/proc/meminfo")"
check mem.pod-lower.container "$(container $C 'grep ^MemTotal: /proc/meminfo')"
limit max $P/memory.max
check mem.container.mount "$(inside $C "grep ^MemTotal: $MNT/proc/meminfo")"
check mem.container.container-cat "$(container $C 'cat /proc/meminfo | grep -E "^(MemTotal|MemFree):"')"
# busybox free asks sysinfo(2), which no file system can change.
check mem.container.busybox-free "$(container $C 'free -k | grep Mem: ')"
limit max $C/memory.max
check mem.unlimited.mount "$(inside $C "grep ^MemTotal: $MNT/proc/meminfo")"
# The host's free and available right before and after the container's: the container's are never more.
check mem.unlimited.free "$(inside $C "grep -E '^(MemFree|MemAvailable):' /proc/meminfo; grep -E '^(MemFree|MemAvailable):' $MNT/proc/meminfo; grep -E '^(MemFree|MemAvailable):' /proc/meminfo")"

# ---- swap ----
mkswap /dev/vdb >/dev/null && swapon /dev/vdb
sleep 0.6
check host-swaptotal "$(field SwapTotal </proc/meminfo)"
limit 536870912 $C/memory.max
limit 33554432 $C/memory.swap.max
check swap.limited.mount "$(inside $C "grep -E '^Swap(Total|Free):' $MNT/proc/meminfo")"
check swaps.limited.mount "$(inside $C "cat $MNT/proc/swaps")"
# Both at one moment: swaps' size and used are meminfo's SwapTotal and SwapTotal - SwapFree.
check swap.with-swaps "$(inside $C "grep -E '^Swap(Total|Free):' $MNT/proc/meminfo; tail -n 1 $MNT/proc/swaps")"
limit 16777216 $P/memory.swap.max
check swap.pod-lower.mount "$(inside $C "grep ^SwapTotal: $MNT/proc/meminfo")"
limit max $P/memory.swap.max
limit max $C/memory.swap.max
check swap.unlimited.mount "$(inside $C "grep ^SwapTotal: $MNT/proc/meminfo")"
swapoff /dev/vdb
sleep 0.6
check swap.none.mount "$(inside $C "grep ^SwapTotal: $MNT/proc/meminfo")"

# ---- CPUs ----
# count | ids | online list
cpus() { inside $C "grep -c ^processor $MNT/proc/cpuinfo; grep ^processor $MNT/proc/cpuinfo | awk '{print \$3}' | tr '\n' ' '; echo; cat $MNT/sys/devices/system/cpu/online"; }
limit "50000 100000" $C/cpu.max
check cpu.half.mount "$(cpus)"
check cpu.half.container "$(container $C 'grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online; nproc')"
limit "150000 100000" $C/cpu.max
check cpu.one-and-half.mount "$(cpus)"
limit "50000 100000" $P/cpu.max
check cpu.pod-lower.mount "$(cpus)"
limit "max 100000" $P/cpu.max
limit "200000 100000" $C/cpu.max
limit 1 $C/cpuset.cpus
check cpu.cpuset-narrower.mount "$(cpus)"
check cpu.cpuset-narrower.container "$(container $C 'grep ^processor /proc/cpuinfo | wc -l; cat /sys/devices/system/cpu/online; nproc')"
check cpu.cpuset-narrower.mount-ns "$(inside $C "cat /mnt/cgview-ns/sys/devices/system/cpu/online")"

# ---- stat, loadavg, pressure, the cpu directory ----
# busy CGROUP SECONDS COMMAND: a busy loop in CGROUP for SECONDS, then COMMAND in CGROUP, then the loop ends.
busy() { inside $1 "true; sh -c 'while :; do :; done' & L=\$!; sleep $2; $3; kill \$L"; }
limit 0-1 $C/cpuset.cpus
limit "150000 100000" $C/cpu.max
check stat.host-cpu-columns "$(grep '^cpu ' /proc/stat | wc -w)"
check stat.first "$(inside $C "grep -E '^(cpu|procs_)' $MNT/proc/stat")"
check stat.busy "$(busy $C 2 "grep -E '^(cpu|procs_)' $MNT/proc/stat")"
check stat.after "$(inside $C "grep -E '^cpu' $MNT/proc/stat")"
check stat.btime "$(inside $C "grep ^btime $MNT/proc/stat") $(grep ^btime /proc/stat)"
# The stat reads above started tracking C with nothing running; a loop for longer than the sampler's
# 5-second interval must then raise the 1-minute average.
check loadavg.busy "$(busy $C 6 "cat $MNT/proc/loadavg")"
check loadavg.other "$(inside $O "cat $MNT/proc/loadavg")"
check pressure.cpu "$(inside $C "cat $MNT/proc/pressure/cpu")"
check pressure.memory "$(inside $C "cat $MNT/proc/pressure/memory")"
check pressure.io "$(inside $C "cat $MNT/proc/pressure/io")"
check slabinfo.head "$(inside $C "head -n 1 $MNT/proc/slabinfo")"
limit "50000 100000" $C/cpu.max
check stat.half "$(inside $C "grep ^cpu $MNT/proc/stat | cut -d' ' -f1")"
check cpudir.half "$(inside $C "ls $MNT/sys/devices/system/cpu | grep -E '^cpu[0-9]+\$'; cat $MNT/sys/devices/system/cpu/possible $MNT/sys/devices/system/cpu/present")"
check cpudir.half.container "$(container $C "ls /sys/devices/system/cpu | grep -E ^cpu[0-9]+\$; cat /sys/devices/system/cpu/cpu0/topology/core_id")"
T=/sys/devices/system/cpu/cpu0/topology
check topology.half.container "$(container $C "cat $T/core_siblings_list $T/package_cpus $T/thread_siblings_list; grep -E \"^(siblings|cpu cores)\" /proc/cpuinfo")"
check topology.host "$(cat $T/package_cpus_list; grep -c ^processor /proc/cpuinfo)"
# Back to the cpuset-narrower state the render check at the end expects.
limit "200000 100000" $C/cpu.max
limit 1 $C/cpuset.cpus

# ---- uptime ----
sleep 3
check host-uptime "$(cat /proc/uptime)"
check uptime.new-pidns "$(inside $C "unshare -p -f sh -c 'sleep 2; cat $MNT/proc/uptime'")"
check uptime.container "$(container $C 'sleep 1; cat /proc/uptime')"
# A caller of the host's pid namespace in C: the host's clock, and C's idle on the CPUs its stat shows.
check uptime.host-ns "$(inside $C "cat $MNT/proc/uptime; grep -c '^cpu[0-9]' $MNT/proc/stat")"

# ---- diskstats ----
check disk.device "$(cat /sys/block/vda/dev)"
inside $C "dd if=/dev/zero of=/dev/vda bs=1M count=4 oflag=direct 2>/dev/null"
check disk.writer.iostat "$(cat $C/io.stat)"
check disk.writer.mount "$(inside $C "grep ' vda ' $MNT/proc/diskstats")"
check disk.writer.container "$(container $C 'grep " vda " /proc/diskstats')"
check disk.other.mount "$(inside $O "grep ' vda ' $MNT/proc/diskstats")"
check disk.writer.sys-block "$(inside $C "cat $MNT/sys/block/vda/stat")"
check disk.other.sys-block "$(inside $O "cat $MNT/sys/block/vda/stat")"
check disk.host-columns "$(grep ' vda ' /proc/diskstats | wc -w)"

# ---- vmstat ----
vmstat_lines() { grep -E '^(nr_free_pages|pgpgin|pgpgout|pgfault|pgmajfault|pswpin|pswpout|pgfree|oom_kill) '; }
names_hash() { cut -d' ' -f1 | md5sum | cut -d' ' -f1; }
check vmstat.names "$(inside $C "cat $MNT/proc/vmstat" | names_hash) $(names_hash </proc/vmstat)"
check vmstat.writer.before "$(inside $C "cat $MNT/proc/vmstat" | vmstat_lines)"
inside $C "dd if=/dev/zero of=/dev/vda bs=1M count=2 seek=8 oflag=direct 2>/dev/null"
sleep 0.3
check vmstat.writer.after "$(inside $C "cat $MNT/proc/vmstat" | vmstat_lines)"
check vmstat.writer.free "$(inside $C "grep ^MemFree: $MNT/proc/meminfo; grep '^nr_free_pages ' $MNT/proc/vmstat")"
check vmstat.writer.container "$(container $C 'cat /proc/vmstat' | vmstat_lines)"
check vmstat.other "$(inside $O "cat $MNT/proc/vmstat" | vmstat_lines)"
check vmstat.host "$(vmstat_lines </proc/vmstat)"
# A cgroup whose only process is OOM-killed (no swap: it was switched off above).
M=$R/other.slice/oomer.scope
mkdir -p $M
echo 16777216 > $M/memory.max
inside $M "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null"
sleep 0.3
check vmstat.oom "$(inside $M "grep '^oom_kill ' $MNT/proc/vmstat") $(grep '^oom_kill ' $M/memory.events)"

# ---- render agrees with the mount ----
check render.cpu-online "$(inside $C "/cgview render sys/devices/system/cpu/online")"

# ---- a kernel without FUSE_NOTIFY_RESEND (this guest's 6.1): the connection is not kept, a stop unmounts ----
check kernel.release "$(uname -r)"
kill -TERM $JOINING; sleep 2
check stop.still-mounted "$(grep -c ' /mnt/cgview ' /proc/self/mountinfo)"

for log in /tmp/cgview.log /tmp/cgview-ns.log; do check "log$log" "$(cat $log)"; done
check done ok
poweroff -f
