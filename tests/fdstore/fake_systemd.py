"""What systemd does for a Type=notify unit with FileDescriptorStoreMax=: it receives READY=1 and
FDSTORE=1 messages (with descriptors) on $NOTIFY_SOCKET, keeps the stored descriptors by FDNAME, and
passes them to the next start of the service as $LISTEN_FDS from descriptor 3 with $LISTEN_FDNAMES and
$LISTEN_PID. Used by tests/fdstore.rs: usage: fake_systemd.py CGVIEW MOUNT_POINT LOG.

Meanwhile a reader keeps MOUNT_POINT/proc/meminfo open and rereads it with pread(fd, .., 0) every
20 ms. Scenarios: kill -9 then a start 0.5 s later; SIGTERM then a start 0.5 s later (systemctl
restart); then a stop that empties the store (systemctl stop): the reader must then get an error.
Prints one JSON line with the counts."""

import array, json, os, signal, socket, sys, threading, time

cgview, mount_point, log_path = sys.argv[1:4]
notify_path = os.path.join(os.path.dirname(log_path), "notify.sock")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)
store = {}  # FDNAME -> fd
log = open(log_path, "ab")


def receive(until):
    """Handles notify messages until one contains `until`; returns it."""
    notify.settimeout(15)
    while True:
        data, fds, _, _ = socket.recv_fds(notify, 4096, 4)
        text = data.decode()
        fields = dict(l.split("=", 1) for l in text.splitlines() if "=" in l)
        name = fields.get("FDNAME", "stored")
        if fields.get("FDSTOREREMOVE") == "1" and name in store:
            os.close(store.pop(name))
        if fields.get("FDSTORE") == "1":
            for fd in fds:
                if name in store:
                    os.close(store[name])
                store[name] = fd
        elif fds:
            for fd in fds:
                os.close(fd)
        if until in text:
            return text


def fcntl_dup_above(fd):
    """A duplicate numbered above the range the passed descriptors go to."""
    import fcntl
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 64)
    os.close(fd)
    return high


def start():
    names = list(store)
    fds = [store[n] for n in names]
    pid = os.fork()
    if pid == 0:
        os.dup2(log.fileno(), 2)
        # Descriptors 3.. are what systemd passes; move ours out of the way first.
        moved = [os.dup(fd) for fd in fds]
        moved = [fcntl_dup_above(fd) for fd in moved]
        for i, fd in enumerate(moved):
            os.dup2(fd, 3 + i, inheritable=True)
        os.closerange(3 + len(moved), 1024)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, FDSTORE="4")
        if names:
            env.update(LISTEN_FDS=str(len(names)), LISTEN_FDNAMES=":".join(names),
                       LISTEN_PID=str(os.getpid()))
        try:
            os.execve(cgview, [cgview, "mount", mount_point, "--connection-holder", "auto"], env)
        finally:
            os._exit(127)
    receive("READY=1")
    # The stored record is sent after READY (the daemon serves first); wait for it.
    deadline = time.time() + 5
    while "cgview-handover" not in store and time.time() < deadline:
        notify.settimeout(0.2)
        try:
            receive("FDNAME=cgview-handover")
        except socket.timeout:
            pass
    return pid


stats = {"reads": 0, "errors": [], "longest_stall_s": 0.0, "wrong": 0}
stop = threading.Event()


def reader():
    fd = os.open(os.path.join(mount_point, "proc/meminfo"), os.O_RDONLY)
    while not stop.is_set():
        began = time.monotonic()
        try:
            data = os.pread(fd, 65536, 0)
            if not data.startswith(b"MemTotal:"):
                stats["wrong"] += 1
            stats["reads"] += 1
        except OSError as e:
            stats["errors"].append(f"{time.monotonic():.3f} {e}")
            if stop_expected.is_set():
                break
        stats["longest_stall_s"] = max(stats["longest_stall_s"], time.monotonic() - began)
        time.sleep(0.02)


stop_expected = threading.Event()
daemon = start()
thread = threading.Thread(target=reader)
thread.start()
time.sleep(1)

os.kill(daemon, signal.SIGKILL)
os.waitpid(daemon, 0)
time.sleep(0.5)
daemon = start()
time.sleep(1)

os.kill(daemon, signal.SIGTERM)
os.waitpid(daemon, 0)
time.sleep(0.5)
daemon = start()
time.sleep(1)
after_restarts = {"reads": stats["reads"], "errors": list(stats["errors"]),
                  "longest_stall_s": stats["longest_stall_s"], "wrong": stats["wrong"]}

# systemctl stop: the daemon goes, and the unit's store is emptied.
stop_expected.set()
os.kill(daemon, signal.SIGTERM)
os.waitpid(daemon, 0)
stopped_at = time.monotonic()
for fd in store.values():
    os.close(fd)
store.clear()
thread.join(timeout=10)
stop.set()
print(json.dumps({
    "after_restarts": after_restarts,
    "error_after_stop": bool(stats["errors"][len(after_restarts["errors"]):]),
    "reader_ended": not thread.is_alive(),
    "stop_to_error_s": time.monotonic() - stopped_at,
}))
