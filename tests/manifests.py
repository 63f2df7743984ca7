#!/usr/bin/env python3
"""The Kubernetes manifests: `kubectl kustomize daemonset/` renders, every object validates against the
OpenAPI schemas of current Kubernetes releases (kubernetes-validate, strict), and the fields that make
cgview work and keep it safe are what they must be. The admission webhook (daemonset/webhook) is rendered
the two ways it is installed, with cert-manager and with `cgview webhook certs`, and checked the same way.
Run by tests/run.sh."""
import base64
import copy
import os
import shutil
import subprocess
import sys
import tempfile

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
    with_cert_manager = check_cert_manager_overlay(labels)
    with_generated_certs = check_generated_certs_overlay(labels)
    print(f"manifests: ok ({len(docs)} objects; with the webhook: {with_cert_manager} with cert-manager, "
          f"{with_generated_certs} with generated certificates; validated against {', '.join(VERSIONS)})")


if __name__ == "__main__":
    main()
