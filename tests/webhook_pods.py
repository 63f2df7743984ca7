#!/usr/bin/env python3
"""The pods the admission webhook's patches produce validate against the Kubernetes schemas.

tests/webhook_review.rs applies each patch to its fixture pod and, with CGVIEW_PATCHED_PODS_DIR set,
writes the result there; this validates every one of them (kubernetes-validate, strict) against the
Kubernetes releases tests/manifests.py uses. Run by tests/run.sh after `cargo test`."""
import json
import os
import subprocess
import sys
import tempfile

VERSIONS = ["1.33.0", "1.37.0"]
# What tests/webhook_review.rs writes: injected pods of every shape, and the conflicting ones it only
# annotates.
EXPECTED = [
    "bare-pod.json",
    "conflicting-volume-name.json",
    "conflicting.json",
    "host-directory.json",
    "host-sys-mount.json",
    "multi-container-init.json",
    "plain-pod.json",
    "sidecar-added-later.json",
]


def validate(pod, version):
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(pod, f)
        f.flush()
        run = subprocess.run(["kubernetes-validate", "--strict", "-k", version, f.name],
                             capture_output=True, text=True)
    return run.returncode == 0, run.stdout + run.stderr


def main(directory):
    found = sorted(os.listdir(directory))
    missing = [name for name in EXPECTED if name not in found]
    if missing:
        sys.exit(f"webhook pods: tests/webhook_review.rs wrote no {', '.join(missing)} in {directory}")
    for name in EXPECTED:
        with open(os.path.join(directory, name)) as f:
            pod = json.load(f)
        # A ReplicaSet's pod has only a generateName at admission; the API server names it after the
        # webhooks ran. kubernetes-validate needs a name, so give it the one the server would.
        meta = pod["metadata"]
        meta.setdefault("name", meta.get("generateName", "") + "x7k2p")
        for version in VERSIONS:
            ok, report = validate(pod, version)
            if not ok:
                sys.exit(f"webhook pods: {name} does not validate against {version}:\n{report}")
    # The check must be able to fail: a misspelt field in an injected volume is rejected.
    with open(os.path.join(directory, "plain-pod.json")) as f:
        pod = json.load(f)
    pod["spec"]["volumes"][-1]["hostPath"]["tpye"] = pod["spec"]["volumes"][-1]["hostPath"].pop("type")
    ok, _ = validate(pod, VERSIONS[-1])
    if ok:
        sys.exit("webhook pods: a misspelt field passed validation; the check checks nothing")
    print(f"webhook pods: ok ({len(EXPECTED)} patched pods, validated against {', '.join(VERSIONS)})")


if __name__ == "__main__":
    main(sys.argv[1])
