#!/bin/busybox sh
# /init of the two-node NUMA test VM (tests/numa_vm.rs boots it with QEMU `-numa node,...`: node 0 = CPU 0 and
# 512 MiB, node 1 = CPU 1 and 512 MiB). It sets up cgroups, runs numactl and lscpu in simulated containers
# with cgview's files bound over /proc and /sys, and prints `CHECK <name> <value>` lines (newlines in a value
# become '|'); the host asserts.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
insmod /modules/fuse.ko || echo "CHECK error insmod-fuse"
for i in $(seq 50); do [ -e /dev/fuse ] && break; sleep 0.1; done

echo
check() { echo "CHECK $1 $(echo "$2" | tr '\n' '|')"; }
# inside CGROUP COMMAND: runs COMMAND in a shell that first moves itself into CGROUP.
inside() { sh -c "echo \$\$ > $1/cgroup.procs && $2"; }
# container CGROUP COMMAND: a new mount + pid namespace with cgview's files and the cpu and node directories
# bound as `cgview docker-args` binds them, then COMMAND.
container() {
  inside "$1" "unshare -m -p -f sh -c 'for f in meminfo cpuinfo stat; do mount --bind $MNT/proc/\$f /proc/\$f; done; \
    mount --bind $MNT/sys/devices/system/cpu /sys/devices/system/cpu; \
    mount --bind $MNT/sys/devices/system/node /sys/devices/system/node; $2'"
}

R=/sys/fs/cgroup
echo "+cpuset +memory +cpu" > $R/cgroup.subtree_control
check host.numactl "$(numactl --hardware)"
check host.node-online "$(cat /sys/devices/system/node/online)"

MNT=/mnt/cgview
mkdir -p $MNT $R/system
inside $R/system "exec /cgview --log info mount $MNT >/tmp/cgview.log 2>&1" &
for i in $(seq 100); do [ -r $MNT/proc/meminfo ] && break; sleep 0.2; done

# one: node 1 and its CPU; both: the two nodes and CPUs; quota: both nodes, one CPU's worth of quota;
# unlimited: node 1 and its CPU without a memory limit.
ONE=$R/one
BOTH=$R/both
QUOTA=$R/quota
UNLIMITED=$R/unlimited
mkdir -p $ONE $BOTH $QUOTA $UNLIMITED
echo 1 > $UNLIMITED/cpuset.cpus
echo 1 > $UNLIMITED/cpuset.mems
echo 1 > $ONE/cpuset.cpus
echo 1 > $ONE/cpuset.mems
echo 402653184 > $ONE/memory.max
echo 0-1 > $BOTH/cpuset.cpus
echo 0-1 > $BOTH/cpuset.mems
echo 536870912 > $BOTH/memory.max
echo 0-1 > $QUOTA/cpuset.cpus
echo "100000 100000" > $QUOTA/cpu.max
# Memory the containers hold: a tmpfs file each (tmpfs pages are charged to the writer's cgroup).
mkdir -p /tmp/one /tmp/both
inside $ONE "dd if=/dev/zero of=/tmp/one/data bs=1M count=16 2>/dev/null"
inside $BOTH "dd if=/dev/zero of=/tmp/both/data bs=1M count=16 2>/dev/null"

# What the kernel shows a process of cgroup one without cgview: both nodes.
check one.kernel.numactl "$(inside $ONE 'numactl --hardware')"

check host.node1-meminfo "$(grep -E ' (MemTotal|MemFree):' /sys/devices/system/node/node1/meminfo)"
# section NAME FILE: the lines between `=== NAME` and the next `===` line of FILE.
section() { sed -n "/^=== $1\$/,/^===/p" "$2" | sed '1d;$d'; }
for name in one both quota unlimited; do
  # One container each. Its output goes through a pipe to a file written from outside the cgroup, so
  # that the file's tmpfs pages are not the container's. One `cat` reads /proc/meminfo, then the node
  # files, which are made from the snapshot of /proc/meminfo it has just read.
  out=/tmp/out-$name
  container $R/$name "echo === numactl; numactl --hardware; echo === lscpu; lscpu; \
    echo === dir; ls /sys/devices/system/node; echo === lists; cd /sys/devices/system/node; \
    for f in online possible has_cpu has_memory has_normal_memory; do echo \$f=\$(cat \$f); done; \
    echo === meminfo; cat /proc/meminfo /sys/devices/system/node/node*/meminfo; echo === end" | cat >$out
  check $name.numactl "$(section numactl $out)"
  check $name.lscpu-numa "$(section lscpu $out | grep -i numa)"
  check $name.node-dir "$(section dir $out)"
  check $name.node-lists "$(section lists $out)"
  check $name.meminfo "$(section meminfo $out | grep -E '^(MemTotal|MemFree|Shmem|Cached):')"
  check $name.node-meminfo "$(section meminfo $out | grep -E '^Node [0-9]+ (MemTotal|MemFree|MemUsed|Shmem|FilePages):')"
done
check one.numa-stat "$(cat $ONE/memory.numa_stat | grep -E '^(file|shmem) ')"

check log "$(cat /tmp/cgview.log)"
check done 1
poweroff -f
