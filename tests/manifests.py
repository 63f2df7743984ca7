#!/usr/bin/env python3
"""The Kubernetes manifests: `kubectl kustomize daemonset/` renders, every object validates against the
OpenAPI schemas of current Kubernetes releases (kubernetes-validate, strict), and the fields that make
cgview work and keep it safe are what they must be. The admission webhook (daemonset/webhook) is rendered
the two ways it is installed, with cert-manager and with `cgview webhook certs`, and checked the same way.
The NRI component (daemonset/components/nri) is rendered and checked, and an application pod of a namespace
enforcing PodSecurity `restricted` (tests/fixtures/nri) is checked against the schemas and against the
profile's rules as Pod Security Admission applies them: admitted as it is (the NRI plugin leaves pods
unchanged), refused as `cgview webhook` patches it (hostPath volumes). Run by tests/run.sh."""
import base64
import copy
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import yaml

VERSIONS = ["1.33.0", "1.37.0"]


def render(directory="daemonset/"):
    out = subprocess.run(["kubectl", "kustomize", directory], check=True, capture_output=True, text=True)
    return out.stdout, [d for d in yaml.safe_load_all(out.stdout) if d]


def overlay(components, directory):
    """An overlay of daemonset/ with `components` (paths under daemonset/, or absolute paths inside
    `directory`), written to `directory`. The overlay has to live outside daemonset/: kustomize refuses a
    base that contains the overlay (a cycle)."""
    # kustomize takes only relative paths to bases and components.
    here = os.path.relpath(os.path.abspath("daemonset"), directory)
    paths = [os.path.relpath(c, directory) if os.path.isabs(c) else f"{here}/{c}" for c in components]
    with open(os.path.join(directory, "kustomization.yaml"), "w") as f:
        f.write(f"resources:\n  - {here}\ncomponents:\n" + "".join(f"  - {p}\n" for p in paths))
    return directory


# The namespace components/metrics admits to the daemon's metrics port, as README documents it.
MONITORING_NAMESPACE = "monitoring"
LOOPBACK = ("127.0.0.1", "[::1]")


def daemon_container(pod):
    """The container that runs `cgview mount` (the first; the keeper runs beside it)."""
    containers = pod["containers"]
    check(containers[0]["name"] == "cgview" and containers[0]["args"][0] == "mount",
          f"the first container must be the daemon: {[c['name'] for c in containers]}")
    return containers[0]


def check_keeper(pod, daemon):
    """The keeper container holds the FUSE connection across restarts of the daemon's container: it
    shares the daemon's keeper socket (a host directory, so that pods of a rollout find each other's) and
    mount point (to unmount when it gives up)."""
    keepers = [c for c in pod["containers"] if c["args"][:1] == ["keeper"]]
    check(len(keepers) == 1, f"one keeper container expected: {[c['name'] for c in pod['containers']]}")
    (keeper,) = keepers
    check(keeper["image"] == daemon["image"], "the keeper runs the daemon's image")
    check(keeper["args"][1] == "/var/lib/cgview", f"keeper args {keeper['args']}")
    socket = arg(keeper["args"], "--socket")
    check(socket and arg(daemon["args"], "--keeper-socket") == socket,
          f"daemon and keeper must name one socket: {daemon['args']} {keeper['args']}")
    # auto: the keeper (a pod has no systemd store), except over io_uring (components/io-uring), whose
    # connections are not kept.
    check(arg(daemon["args"], "--connection-holder") == "auto", "the daemon must use its keeper where it can")
    socket_dir = socket.rsplit("/", 1)[0]
    daemon_mounts = {m["mountPath"]: m["name"] for m in daemon["volumeMounts"]}
    keeper_mounts = {m["mountPath"]: m for m in keeper["volumeMounts"]}
    check(daemon_mounts.get(socket_dir) and keeper_mounts.get(socket_dir, {}).get("name") == daemon_mounts[socket_dir],
          f"the socket's directory {socket_dir} must be one volume in both containers")
    volume = {v["name"]: v for v in pod["volumes"]}[daemon_mounts[socket_dir]]
    # On the host: the next pod's keeper must find this pod's to stand by behind it in a rollout.
    check(volume.get("hostPath", {}).get("path") == socket_dir, f"the keeper socket must be on the host: {volume}")
    root = keeper_mounts.get("/var/lib/cgview", {})
    check(root.get("mountPropagation") == "Bidirectional", "the keeper unmounts on the host: Bidirectional")
    check(keeper["securityContext"].get("privileged") is True, "the keeper unmounts: privileged")
    check("cpu" not in keeper["resources"].get("limits", {}), "no CPU limit on the keeper either")


def metrics_address(ds):
    """The daemon's --metrics-addr as (host, port)."""
    address = arg(ds["spec"]["template"]["spec"]["containers"][0]["args"], "--metrics-addr")
    check(address is not None, "metrics are not served")
    host, port = address.rsplit(":", 1)
    return host, int(port)


def check_exposed_metrics(docs, pod_labels):
    """What components/metrics adds, wherever it is rendered: the daemon binds every address, its port is the
    container port `metrics` with scrape annotations, and a NetworkPolicy admits only the monitoring namespace,
    only to that port. Returns the port."""
    ds = one(docs, "DaemonSet")
    host, port = metrics_address(ds)
    check(host == "0.0.0.0", f"the exposed metrics bind {host}, not every address")
    container = daemon_container(ds["spec"]["template"]["spec"])
    ports = {p["name"]: p for p in container.get("ports", [])}
    check(ports.get("metrics", {}).get("containerPort") == port, f"the metrics port {port} is not 'metrics': {ports}")
    annotations = ds["spec"]["template"]["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == str(port),
          f"scrape annotations {annotations}")

    policy = one(docs, "NetworkPolicy")
    check(policy["metadata"].get("namespace") == "cgview", "NetworkPolicy not in the cgview namespace")
    spec = policy["spec"]
    check(selects(spec["podSelector"], pod_labels), "the NetworkPolicy does not select the daemon's pods")
    check(spec.get("policyTypes") == ["Ingress"], f"policyTypes {spec.get('policyTypes')}: ingress is what to limit")
    rules = spec.get("ingress", [])
    check(rules, "a NetworkPolicy without ingress rules shuts Prometheus out too")
    def namespace(name):
        return {"kubernetes.io/metadata.name": name}
    for rule in rules:
        # A rule without `from` (or with an empty peer) admits every source, an ipBlock peer addresses outside
        # any namespace; a rule without `ports` admits every port. A podSelector beside the namespaceSelector
        # only narrows it.
        peers = rule.get("from", [])
        check(peers and all("namespaceSelector" in p and set(p) <= {"namespaceSelector", "podSelector"}
                            for p in peers), f"an ingress rule admits sources outside a namespace selector: {rule}")
        for peer in peers:
            selector = peer["namespaceSelector"]
            check(selects(selector, namespace(MONITORING_NAMESPACE)),
                  f"{selector} does not select {MONITORING_NAMESPACE}")
            for other in ["default", "cgview", "kube-system", "apps"]:
                check(not selects(selector, namespace(other)), f"{selector} admits the namespace {other}")
        check(rule.get("ports") and all(p.get("port") in (port, "metrics") and p.get("protocol", "TCP") == "TCP"
                                        for p in rule["ports"]), f"an ingress rule admits other ports: {rule}")
    return port


def check_metrics_component(base, pod_labels):
    """components/metrics in an overlay: validates, exposes the metrics as check_exposed_metrics says, and
    changes nothing else in the DaemonSet."""
    with tempfile.TemporaryDirectory() as directory:
        text, docs = render(overlay(["components/metrics"], directory))
    for version in VERSIONS:
        ok, report = validate(text, version)
        check(ok, f"with the metrics component, validation against {version} failed:\n{report}")
    check_exposed_metrics(docs, pod_labels)
    ds = one(docs, "DaemonSet")
    template = ds["spec"]["template"]
    container = template["spec"]["containers"][0]
    container["args"] = base["spec"]["template"]["spec"]["containers"][0]["args"]
    del container["ports"]
    del template["metadata"]["annotations"]
    check(ds == base, "the metrics component changes more than the address, port and annotations")
    check_metrics_component_guard()


def check_metrics_component_guard():
    """The component replaces the argument after --metrics-addr by index, guarded by a JSON patch `test`: a base
    whose arguments moved must fail to render, not get another argument replaced."""
    with tempfile.TemporaryDirectory() as directory:
        base = os.path.join(directory, "daemonset")
        shutil.copytree("daemonset", base)
        manifest = os.path.join(base, "daemonset.yaml")
        with open(manifest) as f:
            text = f.read()
        moved = text.replace('args: ["mount", "/var/lib/cgview", "--metrics-addr"',
                             'args: ["mount", "--foreground", "/var/lib/cgview", "--metrics-addr"')
        check(moved != text, "the guard check could not move the DaemonSet's arguments")
        with open(manifest, "w") as f:
            f.write(moved)
        out = os.path.join(directory, "overlay")
        os.mkdir(out)
        with open(os.path.join(out, "kustomization.yaml"), "w") as f:
            f.write("resources:\n  - ../daemonset\ncomponents:\n  - ../daemonset/components/metrics\n")
        run = subprocess.run(["kubectl", "kustomize", out], capture_output=True, text=True)
    check(run.returncode != 0, "components/metrics patched a base whose --metrics-addr moved")


def check_podmonitor_component(pod_labels):
    """The optional PodMonitor component, applied alone in an overlay, brings components/metrics with it (the
    port it scrapes, reachable from the monitoring namespace) and selects the daemon's pods and that port."""
    with tempfile.TemporaryDirectory() as directory:
        _, docs = render(overlay(["components/podmonitor"], directory))
    check_exposed_metrics(docs, pod_labels)
    monitor = one(docs, "PodMonitor")
    check(monitor["metadata"]["namespace"] == "cgview", "PodMonitor not in the cgview namespace")
    selector = monitor["spec"]["selector"]
    check(selects(selector, pod_labels), "PodMonitor selects no daemon pod")
    check(monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics", "PodMonitor port is not 'metrics'")


def check_io_uring_component(base):
    """The optional io-uring component adds `--io-uring` to the daemon's command line and changes nothing
    else; the result still validates."""
    with tempfile.TemporaryDirectory() as directory:
        text, docs = render(overlay(["components/io-uring"], directory))
    for version in VERSIONS:
        ok, report = validate(text, version)
        check(ok, f"with the io-uring component, validation against {version} failed:\n{report}")
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
    args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
    base_args = base["spec"]["template"]["spec"]["containers"][0]["args"]
    check("--io-uring" not in base_args, f"the default DaemonSet asks for io_uring: {base_args}")
    check(args == base_args + ["--io-uring"], f"io-uring component args {args}")
    ds["spec"]["template"]["spec"]["containers"][0]["args"] = base_args
    check(ds == base, "the io-uring component changes more than the daemon's arguments")


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


def selects(selector, labels):
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects `labels`."""
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels,
              "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


# cert-manager's custom resources are not in Kubernetes' OpenAPI schemas (kubernetes-validate only warns
# about a kind it does not know): they are left out of schema validation and their fields are checked one
# by one instead (check_cert_manager_overlay).
CERT_MANAGER = "cert-manager.io/"


def validate_core(docs, what):
    """Every object but cert-manager's, strictly against each version's schemas."""
    text = yaml.safe_dump_all([d for d in docs if not d["apiVersion"].startswith(CERT_MANAGER)])
    for version in VERSIONS:
        ok, report = validate(text, version)
        check(ok, f"{what}: schema validation against {version} failed:\n{report}")
    # The validator must be able to fail here too: a misspelt webhook field is rejected.
    ok, _ = validate(text.replace("failurePolicy:", "failurePolicies:"), VERSIONS[-1])
    check(not ok, f"{what}: a misspelt field passed validation; the schema check checks nothing")


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    check(len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def arg(args, flag, default=None):
    return args[args.index(flag) + 1] if flag in args else default


def tls_secret_name(deploy):
    (volume,) = [v for v in deploy["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    return volume["secret"]["secretName"]


def check_webhook(docs, daemon_pod_labels):
    """The webhook component as rendered in an overlay: what both ways of installing it share. Returns the
    webhook configuration and the Deployment."""
    for kind in ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]:
        check(all(d["kind"] != kind for d in docs), f"the webhook needs no RBAC, found a {kind}")
    deploy = one(docs, "Deployment", "cgview-webhook")
    service = one(docs, "Service", "cgview-webhook")
    pdb = one(docs, "PodDisruptionBudget")
    account = one(docs, "ServiceAccount")
    config = one(docs, "MutatingWebhookConfiguration", "cgview-webhook")
    ds = one(docs, "DaemonSet")
    for obj in [deploy, service, pdb, account]:
        check(obj["metadata"].get("namespace") == "cgview", f"{obj['kind']} not in the cgview namespace")
    check("namespace" not in config["metadata"], "MutatingWebhookConfiguration is cluster-scoped")

    # Which pods each selector picks: the webhook's and never the daemon's, and the other way round.
    check(deploy["spec"]["replicas"] == 2, "the webhook runs 2 replicas")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    for key in ["app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of"]:
        check(key in pod_labels and key in deploy["metadata"]["labels"], f"webhook label {key} missing")
    for what, selector in [("Deployment", deploy["spec"]["selector"]), ("PodDisruptionBudget", pdb["spec"]["selector"]),
                           ("Service", {"matchLabels": service["spec"]["selector"]})]:
        check(selects(selector, pod_labels), f"the {what} does not select the webhook's pods")
        check(not selects(selector, daemon_pod_labels), f"the {what} selects the DaemonSet's pods")
    check(not selects(ds["spec"]["selector"], pod_labels), "the DaemonSet selects the webhook's pods")
    check(pdb["spec"].get("minAvailable") == 1 or pdb["spec"].get("maxUnavailable") == 1,
          f"the PodDisruptionBudget must keep one webhook pod: {pdb['spec']}")
    check(deploy["spec"]["strategy"] == {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
          "the webhook's rollout must surge, never dropping below its replicas")

    pod = deploy["spec"]["template"]["spec"]
    check(pod["serviceAccountName"] == account["metadata"]["name"], "the webhook's own service account")
    check(account.get("automountServiceAccountToken") is False and pod.get("automountServiceAccountToken") is False,
          "the webhook needs no API token: automountServiceAccountToken must be false")
    for field in ["hostPID", "hostNetwork", "hostIPC"]:
        check(not pod.get(field), f"{field} is not needed")
    # Spread over nodes when possible, never required: a one-node cluster runs both replicas.
    anti_affinity = pod.get("affinity", {}).get("podAntiAffinity", {})
    spread = pod.get("topologySpreadConstraints", [])
    check(spread or anti_affinity, "the webhook's replicas are not spread over nodes")
    check("requiredDuringSchedulingIgnoredDuringExecution" not in anti_affinity, "anti-affinity must be preferred")
    check(all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in spread), "spreading must be preferred")
    check(not pod.get("nodeSelector") and not pod.get("tolerations"), "the webhook runs on ordinary nodes")
    (container,) = pod["containers"]
    check(container["image"] == ds["spec"]["template"]["spec"]["containers"][0]["image"],
          f"the webhook's image {container['image']} is not the DaemonSet's")
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    # The image (FROM scratch) names no user: a uid must be given for runAsNonRoot.
    check(security.get("runAsNonRoot") is True and security.get("runAsUser", 0) != 0, "the webhook runs as root")
    check(security.get("readOnlyRootFilesystem") is True, "root file system should be read-only")
    check(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    check(not security.get("privileged"), "the webhook must not be privileged")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")
    check(security.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp must be RuntimeDefault")
    resources = container["resources"]
    check("cpu" in resources["requests"] and "memory" in resources["requests"], "webhook requests missing")
    check("memory" in resources["limits"], "webhook memory limit missing")

    args = container["args"]
    check(args[0] == "webhook", f"webhook args {args}")
    listen = int(arg(args, "--listen").rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port_name = next((name for name, number in ports.items() if number == listen), None)
    check(port_name is not None, f"the listening port {listen} is not a named container port: {ports}")
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = container[probe].get("httpGet", {})
        check(get.get("scheme") == "HTTPS" and get.get("path") == path and get.get("port") in (port_name, listen),
              f"{probe} must GET {path} over HTTPS on port {listen}: {get}")
    delay = int(arg(args, "--shutdown-delay", "5"))
    check(pod.get("terminationGracePeriodSeconds", 30) > delay, "the grace period must outlast --shutdown-delay")
    # The hostPath volumes the webhook injects point into the DaemonSet's mount: its --mount-root (or the
    # binary's default, as `cgview webhook --help` states it) is the DaemonSet's host path.
    daemon = one(docs, "DaemonSet")
    (daemon_root,) = [v["hostPath"]["path"] for v in daemon["spec"]["template"]["spec"]["volumes"]
                      if v["name"] == "cgview-root"]
    help_text = subprocess.run([cgview_binary(), "webhook", "--help"], check=True, capture_output=True,
                               text=True).stdout
    default_root = help_text.split("--mount-root <DIR>", 1)[1].split("[default: ", 1)[1].split("]", 1)[0]
    check(arg(args, "--mount-root", default_root) == daemon_root,
          f"the webhook injects files from {arg(args, '--mount-root', default_root)}, the DaemonSet mounts at "
          f"{daemon_root}")
    skipped = [args[i + 1] for i, a in enumerate(args) if a == "--skip-namespace"]
    check(not skipped or "kube-system" in skipped, f"--skip-namespace {skipped} leaves kube-system out")

    # The serving certificate: the whole secret mounted read-only (a subPath mount never sees a rotated
    # certificate), and the key and certificate the webhook reads inside it.
    volumes = {v["name"]: v for v in pod["volumes"]}
    check(all("hostPath" not in v for v in volumes.values()), "the webhook needs no host path")
    (tls,) = [m for m in container["volumeMounts"] if "secret" in volumes[m["name"]]]
    check(tls_secret_name(deploy) == "cgview-webhook-tls", "the mounted secret is not cgview-webhook-tls")
    check(tls.get("readOnly") is True, "the TLS secret is mounted read-only")
    check(not tls.get("subPath") and not tls.get("subPathExpr"), "a subPath mount never sees certificate rotation")
    for flag, name in [("--tls-cert", "tls.crt"), ("--tls-key", "tls.key")]:
        check(arg(args, flag) == f"{tls['mountPath']}/{name}", f"{flag} is not {name} in the secret's mount")

    (service_port,) = service["spec"]["ports"]
    check(service_port["port"] == 443 and service_port["targetPort"] in (port_name, listen),
          f"the Service must forward 443 to the webhook's port: {service_port}")
    check_webhook_configuration(config, service)
    return config, deploy


def check_webhook_configuration(config, service):
    webhooks = config["webhooks"]
    check([w["name"] for w in webhooks] == ["namespaces.inject.cgview.io", "pods.inject.cgview.io"],
          f"webhooks {[w['name'] for w in webhooks]}")
    for w in webhooks:
        name = w["name"]
        check(w.get("failurePolicy") == "Ignore", f"{name}: failurePolicy must be Ignore (never block pods)")
        check(w.get("sideEffects") == "None", f"{name}: sideEffects must be None")
        check(w.get("timeoutSeconds", 10) <= 10, f"{name}: timeoutSeconds must be short")
        check(w.get("admissionReviewVersions") == ["v1"], f"{name}: admissionReviewVersions")
        check(w.get("matchPolicy") == "Equivalent", f"{name}: matchPolicy")
        check(w.get("reinvocationPolicy") == "IfNeeded", f"{name}: reinvocationPolicy (sidecars added later)")
        check(w["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                              "resources": ["pods"], "scope": "Namespaced"}], f"{name}: rules {w['rules']}")
        client = w["clientConfig"]
        check("url" not in client, f"{name}: the webhook is reached through its Service")
        check(client["service"] == {"name": service["metadata"]["name"], "namespace": service["metadata"]["namespace"],
                                    "path": "/mutate", "port": service["spec"]["ports"][0]["port"]},
              f"{name}: clientConfig.service {client['service']} is not the webhook's Service")
        check("namespaceSelector" in w and "objectSelector" in w, f"{name}: a selector is missing")
        excluded = [e for e in w["namespaceSelector"].get("matchExpressions", [])
                    if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"]
        check(len(excluded) == 1 and {"kube-system", "cgview"} <= set(excluded[0]["values"]),
              f"{name}: kube-system and cgview are not excluded by name")

    # Who is sent where, evaluated as the API server does: each pod to at most one webhook.
    def sent(namespace, namespace_label, pod_label):
        namespace_labels = {"kubernetes.io/metadata.name": namespace}
        if namespace_label:
            namespace_labels["cgview.io/inject"] = namespace_label
        labels = {"cgview.io/inject": pod_label} if pod_label else {}
        return [w["name"].split(".")[0] for w in webhooks
                if selects(w["namespaceSelector"], namespace_labels) and selects(w["objectSelector"], labels)]
    expected = {  # (namespace, its cgview.io/inject label, the pod's): webhooks
        ("apps", "enabled", None): ["namespaces"],
        ("apps", "enabled", "enabled"): ["namespaces"],
        ("apps", "enabled", "disabled"): [],
        ("apps", None, None): [],
        ("apps", None, "enabled"): ["pods"],
        ("apps", None, "disabled"): [],
    }
    for case, names in expected.items():
        check(sent(*case) == names, f"namespace, its label, pod label {case}: sent to {sent(*case)}, not {names}")
    labels = [None, "enabled", "disabled"]
    for namespace in ["apps", "kube-system", "cgview"]:
        for namespace_label in labels:
            for pod_label in labels:
                got = sent(namespace, namespace_label, pod_label)
                check(len(got) <= 1, f"a pod ({namespace}, {namespace_label}, {pod_label}) is sent to {got}")
                check(namespace == "apps" or not got, f"a pod in {namespace} is sent to {got}")


def hours(duration):
    check(duration.endswith("h") and duration[:-1].isdigit(), f"duration {duration} is not in whole hours")
    return int(duration[:-1])


def check_cert_manager_overlay(daemon_pod_labels):
    """daemonset/ + daemonset/webhook + daemonset/webhook/cert-manager."""
    with tempfile.TemporaryDirectory() as directory:
        _, docs = render(overlay(["webhook", "webhook/cert-manager"], directory))
    validate_core(docs, "the cert-manager overlay")
    config, deploy = check_webhook(docs, daemon_pod_labels)
    for w in config["webhooks"]:
        check("caBundle" not in w["clientConfig"], f"{w['name']}: the caBundle is cert-manager's to inject")

    # cert-manager's objects, field by field (no schema).
    ours = [d for d in docs if d["apiVersion"].startswith(CERT_MANAGER)]
    check({(d["apiVersion"], d["kind"]) for d in ours} == {("cert-manager.io/v1", "Issuer"),
                                                            ("cert-manager.io/v1", "Certificate")},
          "cert-manager objects are v1 Issuers and Certificates (namespaced: no ClusterIssuer)")
    issuers = {d["metadata"]["name"]: d for d in ours if d["kind"] == "Issuer"}
    certificates = {d["metadata"]["name"]: d for d in ours if d["kind"] == "Certificate"}
    # The fields used, as cert-manager v1 spells them: a misspelt one fails here as strict validation would.
    known = {"Issuer": {"selfSigned": set(), "ca": {"secretName"}},
             "Certificate": {"secretName": None, "secretTemplate": {"labels", "annotations"}, "commonName": None,
                             "dnsNames": None, "duration": None, "renewBefore": None, "usages": None, "isCA": None,
                             "privateKey": {"algorithm", "size", "rotationPolicy", "encoding"},
                             "issuerRef": {"name", "kind", "group"}}}
    for obj in ours:
        what = f"{obj['kind']} {obj['metadata']['name']}"
        check(set(obj) == {"apiVersion", "kind", "metadata", "spec"}, f"{what}: top-level fields {sorted(obj)}")
        check(obj["metadata"].get("namespace") == "cgview", f"{what} not in the cgview namespace")
        fields = known[obj["kind"]]
        for field, value in obj["spec"].items():
            check(field in fields, f"{what}: unknown field spec.{field}")
            if fields[field] is not None:
                check(isinstance(value, dict) and set(value) <= fields[field], f"{what}: spec.{field} is {value}")
    serving = certificates.get("cgview-webhook")
    check(serving is not None, "no Certificate cgview-webhook")
    spec = serving["spec"]
    check(spec["secretName"] == tls_secret_name(deploy),
          f"the Certificate writes {spec['secretName']}, pods mount {tls_secret_name(deploy)}")
    check(not spec.get("isCA"), "the serving certificate is not a CA")
    check(spec["dnsNames"] == ["cgview-webhook", "cgview-webhook.cgview", "cgview-webhook.cgview.svc",
                               "cgview-webhook.cgview.svc.cluster.local"], f"dnsNames {spec['dnsNames']}")
    check(spec["privateKey"]["algorithm"] == "ECDSA", "the serving key is ECDSA")
    check(spec["privateKey"].get("rotationPolicy") == "Always", "a renewed certificate gets a new key")
    check(0 < hours(spec["renewBefore"]) < hours(spec["duration"]), "renewal must come before expiry")
    check("server auth" in spec.get("usages", ["server auth"]), "the serving certificate lacks server auth")
    # The chain: serving certificate <- CA issuer <- CA certificate <- self-signed issuer.
    ref = spec["issuerRef"]
    check(ref["kind"] == "Issuer" and ref.get("group", "cert-manager.io") == "cert-manager.io", f"issuerRef {ref}")
    ca_issuer = issuers.get(ref["name"])
    check(ca_issuer is not None and "ca" in ca_issuer["spec"], f"issuer {ref['name']} is not a CA issuer")
    (ca,) = [c for c in certificates.values() if c["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]]
    check(ca["spec"].get("isCA") is True, "the CA issuer's certificate is not a CA")
    check(ca["spec"]["privateKey"]["algorithm"] == "ECDSA", "the CA key is ECDSA")
    check(0 < hours(ca["spec"]["renewBefore"]) < hours(ca["spec"]["duration"]), "CA renewal must come before expiry")
    root = issuers.get(ca["spec"]["issuerRef"]["name"])
    check(root is not None and ca["spec"]["issuerRef"]["kind"] == "Issuer" and root["spec"] == {"selfSigned": {}},
          "the CA certificate is not issued by a self-signed Issuer")
    annotation = config["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
    check(annotation == f"{serving['metadata']['namespace']}/{serving['metadata']['name']}",
          f"cert-manager.io/inject-ca-from is {annotation}")
    return len(docs)


def cgview_binary():
    """The binary built from this tree (`cargo build` is a no-op when it is up to date)."""
    subprocess.run(["cargo", "build", "-q", "--bin", "cgview"], check=True)
    return os.path.abspath("target/debug/cgview")


def check_generated_certs_overlay(daemon_pod_labels):
    """daemonset/ + daemonset/webhook + the component `cgview webhook certs --out-dir` writes."""
    with tempfile.TemporaryDirectory() as directory:
        return check_generated_certs(directory, daemon_pod_labels)


def check_generated_certs(directory, daemon_pod_labels):
    certs = os.path.join(directory, "certs")
    run = subprocess.run([cgview_binary(), "webhook", "certs", "--namespace", "cgview", "--service", "cgview-webhook",
                          "--out-dir", certs], capture_output=True, text=True)
    check(run.returncode == 0, f"cgview webhook certs failed:\n{run.stdout}{run.stderr}")

    def read(name):
        path = os.path.join(certs, name)
        check(os.path.isfile(path), f"cgview webhook certs wrote no {name}")
        with open(path, "rb") as f:
            return f.read()
    for name in ["ca-bundle-patch.yaml", "kustomization.yaml", "tls.key"]:
        read(name)
    _, docs = render(overlay(["webhook", certs], directory))
    validate_core(docs, "the generated-certs overlay")
    config, deploy = check_webhook(docs, daemon_pod_labels)
    check(not any(d["apiVersion"].startswith(CERT_MANAGER) for d in docs), "cert-manager objects without it")
    check("cert-manager.io/inject-ca-from" not in config["metadata"].get("annotations", {}),
          "the cert-manager annotation without cert-manager")

    bundle = read("ca-bundle").decode().strip()
    for w in config["webhooks"]:
        check(w["clientConfig"].get("caBundle") == bundle, f"{w['name']}: caBundle is not the generated ca-bundle")
    check(base64.b64decode(bundle) == read("ca.crt"), "ca-bundle is not ca.crt in base64")
    secret = one(docs, "Secret")
    check(secret["metadata"]["name"] == tls_secret_name(deploy) and secret["metadata"].get("namespace") == "cgview",
          f"the generated Secret is {secret['metadata']}, pods mount cgview/{tls_secret_name(deploy)}")
    check(secret.get("type") == "kubernetes.io/tls", "the generated Secret is not kubernetes.io/tls")
    check(set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}, f"Secret keys {sorted(secret['data'])}")
    for key in secret["data"]:
        check(base64.b64decode(secret["data"][key]) == read(key), f"the Secret's {key} is not the file {key}")
    # The serving certificate chains to the CA and names the Service. The binary's own tests check the
    # certificates; this ties the files to the names the manifests use.
    check(shutil.which("openssl") is not None, "openssl is needed to check the generated certificate")
    ca_crt, tls_crt = os.path.join(certs, "ca.crt"), os.path.join(certs, "tls.crt")
    verify = subprocess.run(["openssl", "verify", "-CAfile", ca_crt, tls_crt], capture_output=True, text=True)
    check(verify.returncode == 0, f"tls.crt does not chain to ca.crt: {verify.stdout}{verify.stderr}")
    names = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", tls_crt],
                           capture_output=True, text=True, check=True).stdout
    for name in ["cgview-webhook.cgview.svc", "cgview-webhook.cgview.svc.cluster.local"]:
        check(f"DNS:{name}" in names, f"tls.crt does not name {name}: {names}")
    return len(docs)


# The NRI plugin (daemonset/components/nri) ----------------------------------------------------------

NRI_SOCKET_DIR = "/var/run/nri"


def help_default(help_text, flag):
    """The `[default: ...]` clap prints for `flag` in a command's --help."""
    section = help_text.split(flag + " ", 1)
    check(len(section) == 2, f"the binary's help has no {flag}")
    text = section[1].split("\n  -", 1)[0].split("\n      --", 1)[0]
    check("[default: " in text, f"the binary's help gives no default for {flag}")
    return text.split("[default: ", 1)[1].split("]", 1)[0]


def parses(args):
    """Whether `cgview <args>` parses: clap checks every argument (names and values) before it reaches the
    trailing --help, then prints the help and exits 0 without running anything. Returns (ok, stderr)."""
    run = subprocess.run([cgview_binary(), *args, "--help"], capture_output=True, text=True)
    return run.returncode == 0, run.stderr


def check_nri_component(base):
    """components/nri in an overlay: validates; the daemon runs the plugin (`mount --nri`) with the
    options README documents; the runtime's NRI socket directory is a host directory mounted where the
    plugin looks for the socket; the plugin's lock is in a host directory every cgview pod of the node
    shares; no webhook object comes with it; nothing else changes. Returns the daemon's arguments."""
    with tempfile.TemporaryDirectory() as directory:
        text, docs = render(overlay(["components/nri"], directory))
    for version in VERSIONS:
        ok, report = validate(text, version)
        check(ok, f"with the nri component, validation against {version} failed:\n{report}")
    kinds = sorted(d["kind"] for d in docs)
    check(kinds == ["DaemonSet", "Namespace"], f"the nri component brings more than the DaemonSet: {kinds}")
    ds = one(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    container = daemon_container(pod)
    args = container["args"]
    base_container = base["spec"]["template"]["spec"]["containers"][0]
    base_args = base_container["args"]
    check("--nri" not in base_args, f"the default DaemonSet runs the NRI plugin: {base_args}")
    check(args[:len(base_args)] == base_args, f"the nri component changes the daemon's arguments: {args}")
    added = args[len(base_args):]
    check(added[:1] == ["--nri"], f"the nri component does not run the plugin in the daemon: {added}")
    help_text = subprocess.run([cgview_binary(), "mount", "--help"], check=True, capture_output=True,
                               text=True).stdout
    for flag in [a for a in added if a.startswith("--")]:
        check(flag == "--nri" or flag.startswith("--nri-"), f"the nri component adds {flag}, not an NRI option")
        check(f"{flag} " in help_text or f"{flag}\n" in help_text, f"`cgview mount` has no option {flag}")
    # The binary itself takes the rendered command line (names and values); and this check can fail.
    ok, error = parses(args)
    check(ok, f"`cgview {' '.join(args)}` does not parse:\n{error}")
    ok, _ = parses(args + ["--nri-when-not-served", "shut"])
    check(not ok, "a bad --nri-when-not-served value parsed; the parse check checks nothing")

    def option(flag):
        return arg(args, flag, help_default(help_text, flag))

    # Never this DaemonSet's own pods (a refused daemon could never come back to serve), never
    # kube-system's, whatever their annotations.
    skipped = [n.strip() for n in option("--nri-skip-namespaces").split(",")]
    own = ds["metadata"]["namespace"]
    check({"kube-system", own} <= set(skipped), f"--nri-skip-namespaces {skipped} leaves out kube-system or {own}")
    check(option("--nri-when-not-served") == "closed", "the component must be fail-closed")
    check(option("--nri-default") == "enabled", "README documents the plugin's default as enabled")
    check(not option_given(args, "--nri-namespaces"), "README documents every namespace as selected")

    # The binds' sources are the daemon's mount point as the runtime sees it: the host path of the
    # mount point's volume, at the same path in the daemon's container.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount_point = args[1]
    check(mounts.get(mount_point, {}).get("name") == "cgview-root"
          and volumes["cgview-root"]["hostPath"]["path"] == mount_point,
          f"the binds' sources ({mount_point}) are not the same path on the host")

    # The socket: its directory from the host (a restarted runtime makes a new socket there).
    socket = option("--nri-socket")
    socket_dir = socket.rsplit("/", 1)[0]
    check(socket_dir == NRI_SOCKET_DIR, f"--nri-socket {socket} is not the runtimes' default socket")
    nri_mount = mounts.get(socket_dir)
    check(nri_mount is not None, f"{socket_dir} is not mounted in the daemon's container")
    check(not nri_mount.get("subPath") and not nri_mount.get("subPathExpr"),
          "a subPath mount never sees the socket a restarted runtime makes")
    nri_volume = volumes[nri_mount["name"]]
    check(nri_volume.get("hostPath") == {"path": NRI_SOCKET_DIR, "type": "Directory"},
          f"the NRI socket's volume must be the host's {NRI_SOCKET_DIR}, type Directory: {nri_volume}")
    check(not any(m["name"] == nri_mount["name"] for m in pod["containers"][1]["volumeMounts"]),
          "the keeper has no use for the NRI socket")

    # One plugin per runtime on a node: the lock is in a host directory both pods of a rollout mount.
    lock_dir = option("--nri-lock-dir").rstrip("/")
    lock_mount = mounts.get(lock_dir)
    check(lock_mount is not None, f"--nri-lock-dir {lock_dir} is not mounted in the daemon's container")
    check(not lock_mount.get("readOnly"), f"--nri-lock-dir {lock_dir} is mounted read-only")
    check(volumes[lock_mount["name"]].get("hostPath", {}).get("path") == lock_dir,
          f"--nri-lock-dir {lock_dir} is not a host directory: two daemons of a rollout would both register")

    # Nothing else changes.
    container["args"] = base_args
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != nri_mount["name"]]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != nri_mount["name"]]
    check(ds == base, "the nri component changes more than the daemon's arguments and the NRI socket's volume")

    # It composes with the other components (each appends to, or replaces by index in, the same list).
    with tempfile.TemporaryDirectory() as directory:
        _, docs = render(overlay(["components/nri", "components/metrics", "components/io-uring"], directory))
    combined = daemon_container(one(docs, "DaemonSet")["spec"]["template"]["spec"])["args"]
    check("--nri" in combined and "--io-uring" in combined and arg(combined, "--metrics-addr") == "0.0.0.0:9477",
          f"nri, metrics and io-uring together: {combined}")
    ok, error = parses(combined)
    check(ok, f"nri, metrics and io-uring together do not parse:\n{error}")
    return args


def option_given(args, flag):
    return flag in args or any(a.startswith(flag + "=") for a in args)


# Pod Security Admission -----------------------------------------------------------------------------
#
# The `baseline` and `restricted` profiles as Pod Security Admission applies them
# (k8s.io/pod-security-admission, policy/check_*.go): each check is an id, a level, the first version it
# applies to, and the ids of the checks it replaces at its level. A check returns why the pod is refused,
# or None. A check applies in the newest form whose version is at most the enforced one.

def all_containers(spec):
    return (spec.get("initContainers", []) + spec.get("containers", [])
            + spec.get("ephemeralContainers", []))


def context(container):
    return container.get("securityContext") or {}


def bad_containers(spec, bad):
    names = [c["name"] for c in all_containers(spec) if bad(context(c), c)]
    return f"containers {names}" if names else None


def windows(spec):
    return (spec.get("os") or {}).get("name") == "windows"


def user_namespace(spec):
    return spec.get("hostUsers") is False


def psa_windows_host_process(meta, spec, version):
    pod = ((spec.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess") is True
    bad = bad_containers(spec, lambda sc, c: (sc.get("windowsOptions") or {}).get("hostProcess") is True)
    return "hostProcess" if pod or bad else None


def psa_host_namespaces(meta, spec, version):
    bad = [f"{field}=true" for field in ["hostNetwork", "hostPID", "hostIPC"] if spec.get(field)]
    return ", ".join(bad) or None


def psa_privileged(meta, spec, version):
    return bad_containers(spec, lambda sc, c: sc.get("privileged") is True)


BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def psa_capabilities_baseline(meta, spec, version):
    return bad_containers(spec, lambda sc, c: not set((sc.get("capabilities") or {}).get("add") or [])
                          <= BASELINE_CAPABILITIES)


def psa_host_path_volumes(meta, spec, version):
    bad = [v["name"] for v in spec.get("volumes", []) if "hostPath" in v]
    return f"hostPath volumes {bad}" if bad else None


def psa_host_ports(meta, spec, version):
    return bad_containers(spec, lambda sc, c: any(p.get("hostPort", 0) != 0 for p in c.get("ports", [])))


def psa_host_probes(meta, spec, version):
    def hosts(handler):
        handler = handler or {}
        return [h.get("host") for h in [handler.get("httpGet"), handler.get("tcpSocket")] if h and h.get("host")]
    def bad(sc, c):
        lifecycle = c.get("lifecycle") or {}
        return any(hosts(c.get(p)) for p in ["livenessProbe", "readinessProbe", "startupProbe"]) \
            or any(hosts(lifecycle.get(h)) for h in ["postStart", "preStop"])
    return bad_containers(spec, bad)


APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def psa_app_armor(meta, spec, version):
    def ok(profile):
        return profile is None or profile.get("type") in ("RuntimeDefault", "Localhost")
    bad = [] if ok((spec.get("securityContext") or {}).get("appArmorProfile")) else ["pod"]
    containers = bad_containers(spec, lambda sc, c: not ok(sc.get("appArmorProfile")))
    bad += [containers] if containers else []
    bad += [f"{k}={v}" for k, v in (meta.get("annotations") or {}).items() if k.startswith(APPARMOR_ANNOTATION)
            and not (v in ("", "runtime/default") or v.startswith("localhost/"))]
    return f"AppArmor profiles of {bad}" if bad else None


def psa_se_linux(meta, spec, version):
    types = {"", "container_t", "container_init_t", "container_kvm_t"}
    if version >= (1, 31):
        types.add("container_engine_t")
    def bad(options):
        return options is not None and (options.get("type", "") not in types or options.get("user")
                                        or options.get("role"))
    pod = bad((spec.get("securityContext") or {}).get("seLinuxOptions"))
    containers = bad_containers(spec, lambda sc, c: bad(sc.get("seLinuxOptions")))
    return "seLinuxOptions" if pod or containers else None


def psa_proc_mount(meta, spec, version):
    return bad_containers(spec, lambda sc, c: sc.get("procMount", "Default") != "Default")


def psa_proc_mount_baseline(meta, spec, version):
    if version >= (1, 35) and user_namespace(spec):
        return None
    return psa_proc_mount(meta, spec, version)


SECCOMP_ALLOWED = ("RuntimeDefault", "Localhost")


def psa_seccomp_baseline(meta, spec, version):
    # Since 1.19 the fields, not the alpha annotations, are checked.
    def bad(profile):
        return profile is not None and profile.get("type") not in SECCOMP_ALLOWED
    pod = bad((spec.get("securityContext") or {}).get("seccompProfile"))
    containers = bad_containers(spec, lambda sc, c: bad(sc.get("seccompProfile")))
    return "seccompProfile" if pod or containers else None


SAFE_SYSCTLS = [((1, 0), {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                          "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}),
                ((1, 27), {"net.ipv4.ip_local_reserved_ports"}),
                ((1, 29), {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                           "net.ipv4.tcp_keepalive_probes"}),
                ((1, 32), {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}),
                ((1, 37), {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"})]


def psa_sysctls(meta, spec, version):
    safe = set().union(*[names for since, names in SAFE_SYSCTLS if version >= since])
    bad = [s["name"] for s in (spec.get("securityContext") or {}).get("sysctls", []) if s["name"] not in safe]
    return f"sysctls {bad}" if bad else None


RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                           "persistentVolumeClaim", "projected", "secret"}


def psa_restricted_volumes(meta, spec, version):
    bad = [v["name"] for v in spec.get("volumes", []) if not set(v) - {"name"} <= RESTRICTED_VOLUME_TYPES]
    return f"volumes {bad} of restricted types" if bad else None


def psa_allow_privilege_escalation(meta, spec, version):
    if windows(spec):
        return None
    return bad_containers(spec, lambda sc, c: sc.get("allowPrivilegeEscalation") is not False)


def psa_run_as_non_root(meta, spec, version):
    if version >= (1, 35) and user_namespace(spec):
        return None
    pod = (spec.get("securityContext") or {}).get("runAsNonRoot")
    if pod is False:
        return "the pod sets runAsNonRoot=false"
    return bad_containers(spec, lambda sc, c: sc.get("runAsNonRoot") is False
                          or (sc.get("runAsNonRoot") is None and pod is not True))


def psa_run_as_user(meta, spec, version):
    if version >= (1, 35) and user_namespace(spec):
        return None
    if (spec.get("securityContext") or {}).get("runAsUser") == 0:
        return "the pod sets runAsUser=0"
    return bad_containers(spec, lambda sc, c: sc.get("runAsUser") == 0)


def psa_seccomp_restricted(meta, spec, version):
    if windows(spec):
        return None
    pod = (spec.get("securityContext") or {}).get("seccompProfile")
    if pod is not None and pod.get("type") not in SECCOMP_ALLOWED:
        return f"the pod's seccompProfile {pod}"

    def bad(sc, c):
        own = sc.get("seccompProfile")
        if own is not None:
            return own.get("type") not in SECCOMP_ALLOWED
        # Unset: the pod's profile applies, which must then be set.
        return pod is None
    return bad_containers(spec, bad)


def psa_capabilities_restricted(meta, spec, version):
    if windows(spec):
        return None
    def bad(sc, c):
        capabilities = sc.get("capabilities") or {}
        return "ALL" not in (capabilities.get("drop") or []) \
            or not set(capabilities.get("add") or []) <= {"NET_BIND_SERVICE"}
    return bad_containers(spec, bad)


# (id, level, since, check, the ids it replaces)
PSA_CHECKS = [
    ("windowsHostProcess", "baseline", (1, 0), psa_windows_host_process, []),
    ("hostNamespaces", "baseline", (1, 0), psa_host_namespaces, []),
    ("privileged", "baseline", (1, 0), psa_privileged, []),
    ("capabilities_baseline", "baseline", (1, 0), psa_capabilities_baseline, []),
    ("hostPathVolumes", "baseline", (1, 0), psa_host_path_volumes, []),
    ("hostPorts", "baseline", (1, 0), psa_host_ports, []),
    ("hostProbesAndHostLifecycle", "baseline", (1, 34), psa_host_probes, []),
    ("appArmorProfile", "baseline", (1, 0), psa_app_armor, []),
    ("seLinuxOptions", "baseline", (1, 0), psa_se_linux, []),
    ("procMount", "baseline", (1, 0), psa_proc_mount_baseline, []),
    ("seccompProfile_baseline", "baseline", (1, 0), psa_seccomp_baseline, []),
    ("sysctls", "baseline", (1, 0), psa_sysctls, []),
    ("restrictedVolumes", "restricted", (1, 0), psa_restricted_volumes, ["hostPathVolumes"]),
    ("allowPrivilegeEscalation", "restricted", (1, 8), psa_allow_privilege_escalation, []),
    ("runAsNonRoot", "restricted", (1, 0), psa_run_as_non_root, []),
    ("runAsUser", "restricted", (1, 23), psa_run_as_user, []),
    ("seccompProfile_restricted", "restricted", (1, 19), psa_seccomp_restricted, ["seccompProfile_baseline"]),
    ("capabilities_restricted", "restricted", (1, 22), psa_capabilities_restricted, ["capabilities_baseline"]),
    ("procMount_restricted", "restricted", (1, 35), psa_proc_mount, ["procMount"]),
]


def psa_version(text):
    """A PodSecurity version label's value (`v1.33`, `latest`) as (major, minor)."""
    if text == "latest":
        return max(psa_version("v" + v.rsplit(".", 1)[0]) for v in VERSIONS)
    major, minor = text.lstrip("v").split(".")
    return int(major), int(minor)


def psa_violations(pod, level, version):
    """{check id: why} for each rule of the PodSecurity `level` (privileged, baseline, restricted) at
    `version` that `pod` breaks."""
    check(level in ("privileged", "baseline", "restricted"), f"no PodSecurity level {level}")
    levels = {"privileged": [], "baseline": ["baseline"], "restricted": ["baseline", "restricted"]}[level]
    checks = [c for c in PSA_CHECKS if c[1] in levels and version >= c[2]]
    replaced = {r for c in checks for r in c[4]}
    found = {}
    for check_id, _, _, rule, _ in checks:
        if check_id not in replaced:
            why = rule(pod.get("metadata", {}), pod["spec"], version)
            if why:
                found[check_id] = why
    return found


def admitted(namespace, pod):
    """What the namespace's `enforce` labels make of the pod: {check id: why} (empty: admitted)."""
    labels = namespace["metadata"].get("labels", {})
    level = labels.get("pod-security.kubernetes.io/enforce", "privileged")
    version = psa_version(labels.get("pod-security.kubernetes.io/enforce-version", "latest"))
    return psa_violations(pod, level, version)


def check_psa_checker(pod):
    """The checker refuses what the profiles refuse, and admits what they admit: each change below to the
    admitted `pod` breaks exactly the named checks at `restricted` (a function of the version where the
    rules changed between versions), or none. Returns how many changes were tried."""
    def container(p, index=0):
        return p["spec"]["containers"][index]
    def sc(p, index=0):
        return container(p, index).setdefault("securityContext", {})
    def pod_sc(p):
        return p["spec"].setdefault("securityContext", {})
    def init(p):
        return p["spec"]["initContainers"][0].setdefault("securityContext", {})
    host = {"name": "host-etc", "hostPath": {"path": "/etc", "type": "Directory"}}
    changes = [
        ("a hostPath volume", lambda p: p["spec"]["volumes"].append(host), {"restrictedVolumes"}),
        ("an nfs volume", lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}),
         {"restrictedVolumes"}),
        ("hostNetwork", lambda p: p["spec"].update(hostNetwork=True), {"hostNamespaces"}),
        ("hostPID", lambda p: p["spec"].update(hostPID=True), {"hostNamespaces"}),
        ("hostIPC", lambda p: p["spec"].update(hostIPC=True), {"hostNamespaces"}),
        ("privileged", lambda p: sc(p).update(privileged=True), {"privileged"}),
        ("a host port", lambda p: container(p)["ports"][0].update(hostPort=80), {"hostPorts"}),
        ("capability SYS_ADMIN", lambda p: sc(p)["capabilities"]["add"].append("SYS_ADMIN"),
         {"capabilities_restricted"}),
        ("capability CHOWN (baseline allows it)", lambda p: sc(p)["capabilities"]["add"].append("CHOWN"),
         {"capabilities_restricted"}),
        ("no drop ALL in an init container", lambda p: init(p)["capabilities"].update(drop=["NET_RAW"]),
         {"capabilities_restricted"}),
        ("runAsNonRoot false in a container", lambda p: sc(p).update(runAsNonRoot=False), {"runAsNonRoot"}),
        ("no runAsNonRoot anywhere", lambda p: pod_sc(p).pop("runAsNonRoot"), {"runAsNonRoot"}),
        ("runAsUser 0", lambda p: sc(p).update(runAsUser=0), {"runAsUser"}),
        ("seccomp Unconfined", lambda p: sc(p).update(seccompProfile={"type": "Unconfined"}),
         {"seccompProfile_restricted"}),
        ("no seccomp profile", lambda p: pod_sc(p).pop("seccompProfile"), {"seccompProfile_restricted"}),
        ("allowPrivilegeEscalation unset", lambda p: init(p).pop("allowPrivilegeEscalation"),
         {"allowPrivilegeEscalation"}),
        # From 1.35 restricted's own check replaces baseline's (which then admits user-namespace pods).
        ("procMount Unmasked", lambda p: sc(p).update(procMount="Unmasked"),
         lambda v: {"procMount_restricted" if v >= (1, 35) else "procMount"}),
        ("an unsafe sysctl", lambda p: pod_sc(p)["sysctls"].append({"name": "kernel.msgmax", "value": "1"}),
         {"sysctls"}),
        ("a sysctl made safe in 1.37", lambda p: pod_sc(p)["sysctls"].append(
            {"name": "net.ipv4.tcp_notsent_lowat", "value": "16384"}),
         lambda v: set() if v >= (1, 37) else {"sysctls"}),
        ("AppArmor Unconfined", lambda p: sc(p).update(appArmorProfile={"type": "Unconfined"}), {"appArmorProfile"}),
        ("an AppArmor annotation unconfined", lambda p: p["metadata"].setdefault("annotations", {}).update(
            {APPARMOR_ANNOTATION + "web": "unconfined"}), {"appArmorProfile"}),
        ("SELinux type spc_t", lambda p: pod_sc(p).update(seLinuxOptions={"type": "spc_t"}), {"seLinuxOptions"}),
        ("an SELinux user", lambda p: sc(p).update(seLinuxOptions={"user": "system_u"}), {"seLinuxOptions"}),
        ("a Windows host process", lambda p: sc(p).update(windowsOptions={"hostProcess": True}),
         {"windowsHostProcess"}),
        # A rule of 1.34 and later.
        ("a probe on another host", lambda p: container(p)["readinessProbe"]["httpGet"].update(host="10.0.0.1"),
         lambda v: {"hostProbesAndHostLifecycle"} if v >= (1, 34) else set()),
        # Admitted.
        ("capability NET_BIND_SERVICE only", lambda p: sc(p)["capabilities"].update(add=["NET_BIND_SERVICE"]), set()),
        ("seccomp Localhost", lambda p: sc(p).update(seccompProfile={"type": "Localhost",
                                                                      "localhostProfile": "app.json"}), set()),
        ("AppArmor RuntimeDefault", lambda p: sc(p).update(appArmorProfile={"type": "RuntimeDefault"}), set()),
        ("SELinux type container_t", lambda p: sc(p).update(seLinuxOptions={"type": "container_t"}), set()),
        ("a safe sysctl", lambda p: pod_sc(p)["sysctls"].append({"name": "net.ipv4.tcp_keepalive_time",
                                                                 "value": "600"}), set()),
        ("procMount Default", lambda p: sc(p).update(procMount="Default"), set()),
        ("an ephemeral volume", lambda p: p["spec"]["volumes"].append({"name": "scratch", "ephemeral": {
            "volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"],
                                             "resources": {"requests": {"storage": "1Gi"}}}}}}), set()),
    ]
    for what, change, expected in changes:
        changed = copy.deepcopy(pod)
        change(changed)
        for version in [psa_version("v" + v.rsplit(".", 1)[0]) for v in VERSIONS]:
            wanted = expected(version) if callable(expected) else expected
            got = psa_violations(changed, "restricted", version)
            check(set(got) == wanted, f"PodSecurity restricted {version}, pod with {what}: {got or 'admitted'}, "
                                      f"expected {sorted(wanted) or 'admitted'}")
    # Baseline admits what only restricted forbids.
    lax = copy.deepcopy(pod)
    del lax["spec"]["securityContext"]
    for c in all_containers(lax["spec"]):
        c.pop("securityContext", None)
    latest = psa_version("latest")
    check(not psa_violations(lax, "baseline", latest), "baseline refuses a pod with no security context")
    check(set(psa_violations(lax, "restricted", latest)) == {
        "allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile_restricted", "capabilities_restricted"},
        f"restricted, pod with no security context: {psa_violations(lax, 'restricted', latest)}")
    return len(changes)


class Webhook:
    """`cgview webhook` on the loopback with certificates `cgview webhook certs` made, run with the
    Deployment's own options: reviews a pod as the API server would send it."""

    def __init__(self, directory, deployment_args):
        self.directory = directory
        certs = os.path.join(directory, "certs")
        subprocess.run([cgview_binary(), "webhook", "certs", "--namespace", "cgview", "--service",
                        "cgview-webhook", "--out-dir", certs], check=True, capture_output=True)
        self.ca = os.path.join(certs, "ca.crt")
        args = list(deployment_args)
        for flag, value in [("--listen", "127.0.0.1:0"), ("--tls-cert", os.path.join(certs, "tls.crt")),
                            ("--tls-key", os.path.join(certs, "tls.key")), ("--shutdown-delay", "0")]:
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        self.log_path = os.path.join(directory, "webhook.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([cgview_binary(), *args], stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None

    def __enter__(self):
        deadline = time.monotonic() + 20
        marker = "webhook serving https://127.0.0.1:"
        while self.port is None:
            with open(self.log_path) as f:
                text = f.read()
            if marker in text:
                self.port = int(text.split(marker, 1)[1].split("/", 1)[0])
            elif self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                check(False, f"cgview webhook did not start:\n{text}")
            else:
                time.sleep(0.05)
        return self

    def __exit__(self, *_):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def review(self, pod):
        """The AdmissionReview response for creating `pod`."""
        context = ssl.create_default_context(cafile=self.ca)
        port = self.port
        class Connection(http.client.HTTPSConnection):
            def connect(self):
                raw = socket.create_connection(("127.0.0.1", port), timeout=10)
                # The name the API server uses for the webhook's Service.
                self.sock = context.wrap_socket(raw, server_hostname="cgview-webhook.cgview.svc")
        with open("tests/fixtures/webhook/plain-pod.json") as f:
            review = json.load(f)
        request = review["request"]
        request.update(uid="6b1f7c0e-2a7d-4f53-9a8e-1d2c3b4a5e6f", name=pod["metadata"]["name"],
                       namespace=pod["metadata"]["namespace"], object=pod)
        connection = Connection("cgview-webhook.cgview.svc", timeout=10)
        try:
            connection.request("POST", "/mutate", body=json.dumps(review),
                               headers={"Content-Type": "application/json"})
            reply = connection.getresponse()
            body = reply.read()
        finally:
            connection.close()
        check(reply.status == 200, f"the webhook answered {reply.status}: {body[:500]!r}")
        response = json.loads(body)["response"]
        check(response["uid"] == request["uid"] and response["allowed"] is True, f"webhook response {response}")
        return response


def json_patch(document, operations):
    """RFC 6902 `add` and `remove` (the operations the webhook emits) applied to a copy of `document`."""
    document = copy.deepcopy(document)
    for operation in operations:
        keys = [k.replace("~1", "/").replace("~0", "~") for k in operation["path"].split("/")[1:]]
        parent = document
        for key in keys[:-1]:
            parent = parent[int(key)] if isinstance(parent, list) else parent[key]
        last = keys[-1]
        if operation["op"] == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), operation["value"])
            else:
                parent[last] = operation["value"]
        elif operation["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            check(False, f"the webhook emitted a JSON patch operation {operation['op']}")
    return document


def check_restricted_pod(nri_args):
    """An application pod in a namespace enforcing PodSecurity `restricted` (tests/fixtures/nri): it
    validates and is admitted as it is, which is how it stays with the NRI plugin (the runtime adds the
    binds, the pod spec is unchanged) and the plugin selects it; the same pod as the webhook patches it in
    a namespace opted in to the webhook has hostPath volumes and is refused, by `baseline` too."""
    path = "tests/fixtures/nri/restricted-app.yaml"
    with open(path) as f:
        text = f.read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    for version in VERSIONS:
        ok, report = validate(text, version)
        check(ok, f"{path}: schema validation against {version} failed:\n{report}")
    ok, _ = validate(text.replace("allowPrivilegeEscalation:", "allowPrivilegeEscalations:"), VERSIONS[-1])
    check(not ok, f"{path}: a misspelt field passed validation; the schema check checks nothing")
    namespace, pod = one(docs, "Namespace"), one(docs, "Pod")
    check(namespace["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted",
          f"{path}: the namespace does not enforce restricted")
    check(pod["metadata"]["namespace"] == namespace["metadata"]["name"], f"{path}: the pod is not in the namespace")
    changes = check_psa_checker(pod)

    # With NRI: the pod as written, at every version.
    for version in VERSIONS:
        refused = psa_violations(pod, "restricted", psa_version("v" + version.rsplit(".", 1)[0]))
        check(not refused, f"restricted {version} refuses the application pod: {refused}")
    check(not admitted(namespace, pod), f"the namespace refuses the application pod: {admitted(namespace, pod)}")
    # ... and the plugin the component runs selects it (the default is on, its namespace is not skipped,
    # it does not opt out).
    skipped = arg(nri_args, "--nri-skip-namespaces", "kube-system").split(",")
    check(pod["metadata"]["namespace"] not in skipped, f"the plugin skips the namespace {pod['metadata']['namespace']}")
    check(arg(nri_args, "--nri-default", "enabled") == "enabled"
          and (pod["metadata"].get("annotations") or {}).get("cgview.io/inject") in (None, "enabled"),
          "the plugin would not select the application pod")

    # With the webhook: the namespace opted in as README says, the pod sent to the webhook by the
    # shipped configuration, patched by the webhook with the shipped Deployment's options.
    with tempfile.TemporaryDirectory() as directory:
        _, webhook_docs = render(overlay(["webhook", "webhook/cert-manager"], directory))
    config = one(webhook_docs, "MutatingWebhookConfiguration")
    deployment = one(webhook_docs, "Deployment", "cgview-webhook")
    opted_in = copy.deepcopy(namespace)
    opted_in["metadata"]["labels"]["cgview.io/inject"] = "enabled"
    namespace_labels = {**opted_in["metadata"]["labels"], "kubernetes.io/metadata.name": namespace["metadata"]["name"]}
    sent = [w["name"] for w in config["webhooks"] if selects(w["namespaceSelector"], namespace_labels)
            and selects(w["objectSelector"], pod["metadata"].get("labels", {}))]
    check(len(sent) == 1, f"the opted-in namespace's pod is sent to {sent}")
    with tempfile.TemporaryDirectory() as directory:
        with Webhook(directory, deployment["spec"]["template"]["spec"]["containers"][0]["args"]) as webhook:
            response = webhook.review(pod)
    check(response.get("patchType") == "JSONPatch" and response.get("patch"), f"the webhook did not patch: {response}")
    patched = json_patch(pod, json.loads(base64.b64decode(response["patch"])))
    check((patched["metadata"].get("annotations") or {}).get("cgview.io/status") == "injected",
          f"the webhook did not inject: {patched['metadata'].get('annotations')}")
    host_paths = [v["name"] for v in patched["spec"]["volumes"] if "hostPath" in v]
    check(host_paths, "the webhook added no hostPath volume")
    patched_text = yaml.safe_dump(patched)
    for version in VERSIONS:
        ok, report = validate(patched_text, version)
        check(ok, f"the webhook's patched pod does not validate against {version}:\n{report}")
        as_version = psa_version("v" + version.rsplit(".", 1)[0])
        refused = psa_violations(patched, "restricted", as_version)
        check(set(refused) == {"restrictedVolumes"} and all(n in refused["restrictedVolumes"] for n in host_paths),
              f"restricted {version} on the webhook's pod: {refused}, expected its hostPath volumes only")
        refused = psa_violations(patched, "baseline", as_version)
        check(set(refused) == {"hostPathVolumes"}, f"baseline {version} on the webhook's pod: {refused}")
        check(not psa_violations(patched, "privileged", as_version), "privileged refuses a pod")
    check(admitted(opted_in, patched), "the restricted namespace admits the webhook's pod")
    return changes


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
    container = daemon_container(pod)
    check(container["image"].startswith("ghcr.io/cgview/cgview:"), f"image {container['image']}")
    check_keeper(pod, container)
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
    volumes = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    root = mounts["cgview-root"]
    check(root["mountPath"] == "/var/lib/cgview" and root.get("mountPropagation") == "Bidirectional",
          "the mount point needs Bidirectional propagation")
    check(volumes["cgview-root"] == {"path": "/var/lib/cgview", "type": "DirectoryOrCreate"},
          f"host mount point {volumes['cgview-root']}")
    check(mounts["cgroup"].get("readOnly") is True and volumes["cgroup"]["path"] == "/sys/fs/cgroup",
          "host /sys/fs/cgroup must be mounted read-only")
    check(volumes["fuse"] == {"path": "/dev/fuse", "type": "CharDevice"}, "/dev/fuse must be a CharDevice")
    check(set(volumes) == {"cgview-root", "cgroup", "fuse", "keeper-socket"}, f"unexpected host paths {sorted(volumes)}")
    check(pod.get("terminationGracePeriodSeconds", 30) >= 10, "too short a grace period to unmount")
    args = container["args"]
    check(args[:2] == ["mount", "/var/lib/cgview"], f"args {args}")
    # Unauthenticated: by default only the pod itself (and `kubectl port-forward`) reaches it.
    host, _ = metrics_address(ds)
    check(host in LOOPBACK, f"by default the metrics must bind the pod's loopback, not {host}")
    check(not container.get("ports"), f"by default no port is exposed: {container.get('ports')}")
    annotations = ds["spec"]["template"]["metadata"].get("annotations", {})
    check(not any(k.startswith("prometheus.io/") for k in annotations),
          f"scrape annotations on a pod whose metrics nobody outside can reach: {annotations}")
    check_metrics_component(copy.deepcopy(ds), labels)
    check_podmonitor_component(labels)
    check_io_uring_component(copy.deepcopy(ds))
    nri_args = check_nri_component(copy.deepcopy(ds))
    with_cert_manager = check_cert_manager_overlay(labels)
    with_generated_certs = check_generated_certs_overlay(labels)
    psa_changes = check_restricted_pod(nri_args)
    print(f"manifests: ok ({len(docs)} objects; with the webhook: {with_cert_manager} with cert-manager, "
          f"{with_generated_certs} with generated certificates; with the NRI plugin; validated against "
          f"{', '.join(VERSIONS)}; a restricted-namespace pod admitted as NRI leaves it and refused as the "
          f"webhook patches it, PodSecurity checker tried on {psa_changes} changes)")


if __name__ == "__main__":
    main()
