#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs through .ci/run.
# Needs root and /dev/fuse (the mounted suite mounts FUSE and creates cgroups). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run.sh: the mounted tests create cgroups and FUSE mounts: run as root" >&2
  exit 1
fi
if [ ! -e /dev/fuse ]; then
  echo "tests/run.sh: /dev/fuse is missing: load the fuse module (modprobe fuse)" >&2
  exit 1
fi

# Debian packages the tests shell out to: free, top, uptime, vmstat (procps), unshare/setpriv/mount
# (util-linux), getconf (libc-bin), python3, node (nodejs), iostat and mpstat (sysstat), a static
# busybox (busybox-static: sendfile readers and tool-less container roots), systemd-analyze (systemd: the
# unit for Docker hosts is verified).
missing=()
for tool in free top uptime vmstat; do command -v $tool >/dev/null || { missing+=(procps); break; }; done
command -v unshare >/dev/null && command -v setpriv >/dev/null || missing+=(util-linux)
command -v getconf >/dev/null || missing+=(libc-bin)
command -v python3 >/dev/null || missing+=(python3)
# tests/abuse.rs runs python as uid 65534, which cannot reach a python under /root (pyenv): Debian's.
[ -x /usr/bin/python3 ] || missing+=(python3)
command -v prlimit >/dev/null && command -v lscpu >/dev/null || missing+=(util-linux)
# numactl --hardware reads the node directory in the two-node VM (tests/numa_vm.rs).
command -v numactl >/dev/null || missing+=(numactl)
command -v node >/dev/null || missing+=(nodejs)
command -v iostat >/dev/null && command -v mpstat >/dev/null || missing+=(sysstat)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v file >/dev/null || missing+=(file)
# curl is the real HTTPS client (HTTP/1.1 and HTTP/2) the admission webhook's TLS tests talk to.
command -v curl >/dev/null || missing+=(curl)
# openssl checks the certificate chain `cgview webhook certs` writes (tests/manifests.py).
command -v openssl >/dev/null || missing+=(openssl)
# kubectl renders daemonset/ (kustomize); machines of this kind carry it with the Cloud SDK, Debian's is
# older but renders the fields used.
command -v kubectl >/dev/null || missing+=(kubernetes-client)
# Docker (with runc) and rootful podman run real containers against the daemon (tests/docker_runtime.rs,
# tests/docker_limits.rs).
command -v dockerd >/dev/null || missing+=(docker.io)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
# A C compiler and a static libc build the sysinfo(2) probe runc's containers run (tests/seccomp_sysinfo.rs).
command -v cc >/dev/null || missing+=(gcc)
dpkg -s libc6-dev >/dev/null 2>&1 || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A Docker daemon for the real-runtime suites (tests/docker_runtime.rs, tests/docker_limits.rs): where none
# runs (no systemd on CI machines), one started here with a private data root, no bridge and no iptables
# rules (the containers run with --network none), and a log to read when it fails.
if ! docker info >/dev/null 2>&1; then
  echo "== starting dockerd (data root /var/lib/cgview-test-docker)"
  (setsid dockerd --data-root /var/lib/cgview-test-docker --bridge=none --iptables=false \
    >/tmp/cgview-tests-dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -20 /tmp/cgview-tests-dockerd.log; exit 1; }
fi

# kubernetes-validate (PyPI) checks the manifests against Kubernetes' OpenAPI schemas.
python3 -c "import kubernetes_validate" 2>/dev/null || python3 -m pip install -q kubernetes-validate

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== the lean daemon (no webhook): builds and passes clippy"
cargo clippy --no-default-features --all-targets -- -D warnings
echo "== static binary (the image the Docker agent test builds, and the checks below)"
static=$(packaging/build-static.sh)
export CGVIEW_STATIC_BINARY="$PWD/$static"
echo "== cargo test (unit, captured files, fixture trees, mounted, real tools, real Docker, pure cgroup v2 VM)"
test_log="$(mktemp)"
# Everything runs here: a test whose needs (root, /dev/fuse, cgroup v1, FUSE over io_uring, QEMU's
# kernel) are missing fails instead of skipping itself (tests/needs), so CI never skips silently.
export CGVIEW_TEST_REQUIRE_ALL=1
# tests/webhook_review.rs writes the pods its patches produce here, for tests/webhook_pods.py.
export CGVIEW_PATCHED_PODS_DIR="$(mktemp -d)"
trap 'rm -rf "$test_log" "$CGVIEW_PATCHED_PODS_DIR"' EXIT
cargo test --workspace --all-targets 2>&1 | tee "$test_log"
passed=$(awk '/^test result:/ {sum += $4} END {print sum + 0}' "$test_log")
failed=$(awk '/^test result:/ {sum += $6} END {print sum + 0}' "$test_log")
if [ -d benches ] && ls benches/*.rs >/dev/null 2>&1; then
  echo "== cargo bench --no-run"
  cargo bench --no-run
fi
echo "== Kubernetes manifests"
python3 tests/manifests.py
echo "== pods as the admission webhook patches them, against the Kubernetes schemas"
python3 tests/webhook_pods.py "$CGVIEW_PATCHED_PODS_DIR"
echo "== static binary (no shared library), mounted, probed and stopped"
static_dir=$(mktemp -d)
# With its keeper (the default), a stop leaves the mount for the next daemon until --resume-within.
"$static" mount "$static_dir/mnt" --resume-within 1 2>"$static_dir/log" &
static_pid=$!
for _ in $(seq 100); do "$static" probe "$static_dir/mnt" 2>/dev/null && break; sleep 0.1; done
"$static" probe "$static_dir/mnt" || { cat "$static_dir/log"; kill -9 $static_pid; exit 1; }
"$static" docker-args "$static_dir/mnt" | grep -q "type=bind,source=$static_dir/mnt/proc/meminfo,target=/proc/meminfo,readonly"
kill -TERM $static_pid; wait $static_pid
for _ in $(seq 50); do grep -q " $static_dir/mnt " /proc/self/mountinfo || break; sleep 0.1; done
! grep -q " $static_dir/mnt " /proc/self/mountinfo
rm -rf "$static_dir"
echo "== fuzz smoke run"
bash fuzz/run-smoke.sh
echo "== all checks passed"
echo "cargo test: $passed passed, $failed failed"
# The real-runtime suites' wall time (each test binary reports its own).
awk '/Running tests\/docker_/ {suite = $2} suite && /^test result:/ {print "real-runtime suite " suite ": " $NF; suite = ""}' "$test_log"
