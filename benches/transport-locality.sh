#!/usr/bin/env bash
# Where a FUSE round trip's cost goes, by transport: a C loop of open + read to EOF + close on cgview's
# floor file (--diagnostic-floor: no work behind it), reads/s and the daemon's CPU per read, for
#   16 readers unpinned; 16 readers and the daemon all on CPU 0 (no wake-up crosses CPUs);
#   1 reader in the root cgroup; 1 reader in a child cpu cgroup, unpinned and pinned to CPU 0;
# over /dev/fuse and over FUSE over io_uring (--io-uring; enable_uring is set for the run and put back).
# Run as root from the repository root after `cargo build --release`; needs cc. SECONDS_PER_RUN (default 3),
# ROUNDS (default 2). Cleans up after itself.
set -euo pipefail
bin="$(realpath "${CGVIEW:-target/release/cgview}")"
seconds="${SECONDS_PER_RUN:-3}"
rounds="${ROUNDS:-2}"
switch=/sys/module/fuse/parameters/enable_uring
work="$(mktemp -d)"
mnt="$work/mnt"
group=/sys/fs/cgroup/cpu/cgview-locality-$$
[ -d /sys/fs/cgroup/cpu ] || group=/sys/fs/cgroup/cgview-locality-$$
previous_switch="$(cat "$switch" 2>/dev/null || true)"
daemon=""

cleanup() {
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  mountpoint -q "$mnt" 2>/dev/null && umount -l "$mnt"
  [ -d "$group" ] && rmdir "$group" 2>/dev/null || true
  [ -n "$previous_switch" ] && echo "$previous_switch" > "$switch"
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/reader.c" <<'C'
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static const char *path;
static double seconds;
static int pin = -1;
static long counts[64];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void *run(void *arg) {
  long i = (long)arg; char buf[65536]; long n = 0;
  if (pin >= 0) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(pin, &s); sched_setaffinity(0, sizeof s, &s); }
  for (double end = now() + seconds; now() < end; n++) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); exit(1); }
    while (read(fd, buf, sizeof buf) > 0) {}
    close(fd);
  }
  counts[i] = n; return 0;
}
int main(int argc, char **argv) {
  path = argv[1]; int threads = atoi(argv[2]); seconds = atof(argv[3]); if (argc > 4) pin = atoi(argv[4]);
  pthread_t t[64]; long total = 0;
  for (long i = 0; i < threads; i++) pthread_create(&t[i], 0, run, (void *)i);
  for (int i = 0; i < threads; i++) { pthread_join(t[i], 0); total += counts[i]; }
  printf("%.0f\n", total / seconds); return 0;
}
C
cc -O2 -pthread "$work/reader.c" -o "$work/reader"
mkdir -p "$mnt" "$group"
[ -f "$group/cpu.cfs_quota_us" ] || echo "+cpu" > "$(dirname "$group")/cgroup.subtree_control" 2>/dev/null || true

# measure TRANSPORT_ARGS DAEMON_CPUS READERS PIN IN_GROUP LABEL
measure() {
  taskset -c "$2" "$bin" mount "$mnt" --diagnostic-floor $1 2>"$work/log" &
  daemon=$!
  for _ in $(seq 100); do [ -e "$mnt/.cgview-floor" ] && break; sleep 0.05; done
  local before after reads
  before=$(awk '{print $14 + $15}' "/proc/$daemon/stat")
  if [ "$5" = yes ]; then
    reads=$(sh -c "echo \$\$ > $group/cgroup.procs; exec $work/reader $mnt/.cgview-floor $3 $seconds $4")
  else
    reads=$("$work/reader" "$mnt/.cgview-floor" "$3" "$seconds" "$4")
  fi
  after=$(awk '{print $14 + $15}' "/proc/$daemon/stat")
  kill -TERM "$daemon"; wait "$daemon" || true; daemon=""
  local hz; hz=$(getconf CLK_TCK)
  printf '%-12s %-44s %8s reads/s  daemon %6.1f us/read\n' "${1:-/dev/fuse}" "$6" "$reads" \
    "$(echo "($after - $before) * 1000000 / $hz / ($reads * $seconds)" | bc -l)"
}

last_cpu=$(($(nproc) - 1))
[ -w "$switch" ] && echo Y > "$switch"
for round in $(seq "$rounds"); do
  for transport in "" "--io-uring"; do
    measure "$transport" "0-$last_cpu" 16 -1 no "16 readers, unpinned"
    measure "$transport" 0 16 0 no "16 readers and the daemon on CPU 0"
    measure "$transport" "0-$last_cpu" 1 -1 no "1 reader, root cgroup"
    measure "$transport" "0-$last_cpu" 1 -1 yes "1 reader, child cgroup, unpinned"
    measure "$transport" "0-$last_cpu" 1 0 yes "1 reader, child cgroup, pinned to CPU 0"
  done
done
