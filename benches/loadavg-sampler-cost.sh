#!/usr/bin/env bash
# What the loadavg sampler costs: CONTAINERS cgroups (default 100) with TASKS sleeping tasks each (default
# 10), each read once through the mount so the sampler tracks it, then the daemon's user+system CPU time
# over WINDOW seconds (default 60), against the same window with nothing tracked.
# Run as root from the repository root after `cargo build --release`. Cleans up after itself.
set -euo pipefail
bin="${CGVIEW:-target/release/cgview}"
containers="${CONTAINERS:-100}"
tasks="${TASKS:-10}"
window="${WINDOW:-60}"
controller=/sys/fs/cgroup/cpuacct
[ -d "$controller" ] || controller=/sys/fs/cgroup
prefix="cgview-sampler-cost-$$"
mnt="$(mktemp -d)"
daemon=""

cleanup() {
  for dir in "$controller/$prefix"-*; do
    [ -d "$dir" ] || continue
    for pid in $(cat "$dir/cgroup.procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  done
  sleep 0.5
  for dir in "$controller/$prefix"-*; do [ -d "$dir" ] && rmdir "$dir" 2>/dev/null || true; done
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  mountpoint -q "$mnt" && umount -l "$mnt"
  rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
measure() {
  local before after
  before=$(cpu_ticks)
  sleep "$window"
  after=$(cpu_ticks)
  echo $((after - before))
}

"$bin" mount "$mnt" 2>/dev/null &
daemon=$!
for _ in $(seq 100); do [ -r "$mnt/proc/loadavg" ] && break; sleep 0.1; done

for i in $(seq "$containers"); do
  dir="$controller/$prefix-$i"
  mkdir "$dir"
  for _ in $(seq "$tasks"); do
    # A subshell, so the sleepers are not this shell's jobs (no "Killed" lines at cleanup).
    (sh -c "echo \$\$ > $dir/cgroup.procs && exec sleep 100000" &)
  done
done
sleep 1

hz=$(getconf CLK_TCK)
echo "daemon CPU over ${window}s, nothing tracked ..."
idle=$(measure)
for i in $(seq "$containers"); do
  sh -c "echo \$\$ > $controller/$prefix-$i/cgroup.procs && cat $mnt/proc/loadavg >/dev/null"
done
echo "daemon CPU over ${window}s, $containers containers x $tasks tasks tracked ..."
tracked=$(measure)
awk -v idle="$idle" -v tracked="$tracked" -v hz="$hz" -v window="$window" -v n="$containers" -v t="$tasks" 'BEGIN {
  printf "nothing tracked: %.1f ms CPU in %d s (%.3f%% of one CPU)\n", idle * 1000 / hz, window, idle * 100 / hz / window
  printf "%d containers x %d tasks: %.1f ms CPU in %d s (%.3f%% of one CPU)\n", n, t, tracked * 1000 / hz, window, tracked * 100 / hz / window
}'
