#!/usr/bin/env python3
"""The Kubernetes manifests: `kubectl kustomize daemonset/` renders, every object validates against the
OpenAPI schemas of current Kubernetes releases (kubernetes-validate, strict), and the fields that make
cgview work and keep it safe are what they must be. Run by tests/run.sh."""
import subprocess
import sys
import tempfile

import yaml

VERSIONS = ["1.33.0", "1.37.0"]


def render(directory="daemonset/"):
    out = subprocess.run(["kubectl", "kustomize", directory], check=True, capture_output=True, text=True)
    return out.stdout, [d for d in yaml.safe_load_all(out.stdout) if d]


def check_podmonitor_component(pod_labels):
    """The optional PodMonitor component, applied in an overlay, selects the daemon's pods and port."""
    import os
    overlay = tempfile.mkdtemp()
    # kustomize takes only relative paths to bases and components.
    here = os.path.relpath(os.path.abspath("daemonset"), overlay)
    with open(os.path.join(overlay, "kustomization.yaml"), "w") as f:
        f.write(f"resources:\n  - {here}\ncomponents:\n  - {here}/components/podmonitor\n")
    _, docs = render(overlay)
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    check(len(monitors) == 1, "the podmonitor component adds no PodMonitor")
    monitor = monitors[0]
    check(monitor["metadata"]["namespace"] == "cgview", "PodMonitor not in the cgview namespace")
    selector = monitor["spec"]["selector"]["matchLabels"]
    check(all(pod_labels.get(k) == v for k, v in selector.items()), "PodMonitor selects no daemon pod")
    check(monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics", "PodMonitor port is not 'metrics'")


def validate(text, version):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        run = subprocess.run(["kubernetes-validate", "--strict", "-k", version, f.name],
                             capture_output=True, text=True)
    return run.returncode == 0, run.stdout + run.stderr


def check(condition, what):
    if not condition:
        sys.exit(f"manifests: {what}")


def main():
    text, docs = render()
    for version in VERSIONS:
        ok, report = validate(text, version)
        check(ok, f"schema validation against {version} failed:\n{report}")
    # The validator must be able to fail: a misspelt field is rejected.
    ok, _ = validate(text.replace("hostPID:", "hostPid:"), VERSIONS[-1])
    check(not ok, "a misspelt field passed validation; the schema check checks nothing")

    kinds = {d["kind"]: d for d in docs}
    check(set(kinds) == {"Namespace", "DaemonSet"}, f"unexpected objects {sorted(kinds)}")
    ds = kinds["DaemonSet"]
    check(ds["metadata"]["namespace"] == "cgview", "DaemonSet not in the cgview namespace")
    strategy = ds["spec"]["updateStrategy"]
    check(strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
          f"update strategy must surge for a zero-failure take-over: {strategy}")
    pod = ds["spec"]["template"]["spec"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    for key in ["app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/version",
                "app.kubernetes.io/part-of"]:
        check(key in labels and key in ds["metadata"]["labels"], f"label {key} missing")
    check(pod.get("hostPID") is True, "hostPID must be true (callers are host pids)")
    check(not pod.get("hostNetwork"), "hostNetwork is not needed")
    check(pod.get("priorityClassName") == "system-node-critical", "priority must be system-node-critical")
    check(pod.get("tolerations") == [{"operator": "Exists"}], "must tolerate every taint")
    (container,) = pod["containers"]
    check(container["image"].startswith("ghcr.io/cgview/cgview:"), f"image {container['image']}")
    security = container["securityContext"]
    check(security.get("privileged") is True, "privileged is needed for FUSE and setns")
    check(security.get("readOnlyRootFilesystem") is True, "root file system should be read-only")
    resources = container["resources"]
    check("cpu" in resources["requests"] and "memory" in resources["requests"], "requests missing")
    check("memory" in resources["limits"], "memory limit missing")
    check("cpu" not in resources.get("limits", {}), "a CPU limit throttles every container's /proc reads")
    for probe in ["livenessProbe", "readinessProbe"]:
        command = container[probe]["exec"]["command"]
        check(command == ["/cgview", "probe", "/var/lib/cgview"], f"{probe} must read through the mount")
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v["hostPath"] for v in pod["volumes"]}
    root = mounts["cgview-root"]
    check(root["mountPath"] == "/var/lib/cgview" and root.get("mountPropagation") == "Bidirectional",
          "the mount point needs Bidirectional propagation")
    check(volumes["cgview-root"] == {"path": "/var/lib/cgview", "type": "DirectoryOrCreate"},
          f"host mount point {volumes['cgview-root']}")
    check(mounts["cgroup"].get("readOnly") is True and volumes["cgroup"]["path"] == "/sys/fs/cgroup",
          "host /sys/fs/cgroup must be mounted read-only")
    check(volumes["fuse"] == {"path": "/dev/fuse", "type": "CharDevice"}, "/dev/fuse must be a CharDevice")
    check(set(volumes) == {"cgview-root", "cgroup", "fuse"}, f"unexpected host paths {sorted(volumes)}")
    check(pod.get("terminationGracePeriodSeconds", 30) >= 10, "too short a grace period to unmount")
    args = container["args"]
    check(args[:2] == ["mount", "/var/lib/cgview"], f"args {args}")
    check("--metrics-addr" in args, "metrics are not served")
    port = args[args.index("--metrics-addr") + 1].rsplit(":", 1)[1]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports.get("metrics") == int(port), f"the metrics port {port} is not exposed as 'metrics': {ports}")
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    check(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == port,
          f"scrape annotations {annotations}")
    check_podmonitor_component(labels)
    print(f"manifests: ok ({len(docs)} objects, validated against {', '.join(VERSIONS)})")


if __name__ == "__main__":
    main()
