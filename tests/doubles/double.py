#!/usr/bin/python3
"""TEST DOUBLES of kubeadm, kubectl, kubelet, systemctl and the package tools, for hacluster's
bootstrap tests on network-namespace nodes. They are not Kubernetes: they honour the contract
the bootstrap relies on (files kubeadm writes, its output, its failures, exit codes) and drive
REAL etcd members, so join order and quorum are checked by etcd itself.

One script, many names (symlinks in the node's /usr/local/bin); argv[0] picks the tool. Every
call is logged to /var/log/hacluster-doubles/calls.jsonl with start and end times.
"""
import base64
import glob
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

# ssl and urllib load lazily, where a double talks HTTP: they double an interpreter's start-up
# time, and 20 workers start their doubles at once on two shared cores.

STATE = "/var/lib/hacluster-doubles"
LOG = "/var/log/hacluster-doubles/calls.jsonl"
K8S = "/etc/kubernetes"
PKI = K8S + "/pki"
MANIFESTS = K8S + "/manifests"
LIB = os.path.dirname(os.path.realpath(__file__))
ETCDCTL = "/usr/bin/etcdctl"


def die(msg, code=1):
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.exit(code)


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def save(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def node_ip():
    return load(STATE + "/node.json", {}).get("ip", "127.0.0.1")


def log_call(tool, args, start, rc, extra=None):
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    rec = {"tool": tool, "args": args, "start": start, "end": time.time(), "rc": rc, "ip": node_ip()}
    if extra:
        rec.update(extra)
    with open(LOG, "a") as f:
        f.write(json.dumps(rec) + "\n")


def say(line):
    """A progress line, flushed at once, as kubeadm writes them."""
    print(line, flush=True)


def phase(name, fn):
    """Runs fn and logs its start and end as its own record (e.g. etcd member add)."""
    start = time.time()
    try:
        return fn()
    finally:
        log_call("phase", [name], start, 0)


# ---------------------------------------------------------------- etcd (real) helpers

def etcdctl(endpoints, *args, check=True):
    r = subprocess.run([ETCDCTL, "--endpoints", endpoints, "--dial-timeout", "3s", "--command-timeout", "5s", *args],
                       capture_output=True, text=True, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
    if check and r.returncode != 0:
        die(f"etcdctl {' '.join(args)}: {r.stderr.strip()}")
    return r


def kv_get(key, endpoints="http://127.0.0.1:2379"):
    r = etcdctl(endpoints, "get", key, "--print-value-only", check=False)
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None


def kv_put(key, value, endpoints="http://127.0.0.1:2379"):
    etcdctl(endpoints, "put", key, json.dumps(value))


def wait(what, cond, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return
        time.sleep(0.2)
    die(f"timed out waiting for {what}")


def etcd_healthy():
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:2381/health", timeout=2) as r:
            return json.loads(r.read()).get("health") == "true"
    except Exception:
        return False


def insecure():
    import ssl
    # A bare context: create_default_context() loads the system's CA bundle (~15 ms of CPU)
    # only to switch verification off.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def api(server, method, path, body=None, timeout=5):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(server.rstrip("/") + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=insecure()) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except Exception as e:
        return 0, str(e)


# ---------------------------------------------------------------- PKI with real openssl

def openssl(*args, stdin=None):
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"openssl {args[0]}: {r.stderr.strip()}")
    return r.stdout


def make_ca():
    os.makedirs(PKI + "/etcd", exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=kubernetes",
            "-keyout", PKI + "/ca.key", "-out", PKI + "/ca.crt")
    os.chmod(PKI + "/ca.key", 0o600)


def ca_hash():
    pub = subprocess.run("openssl x509 -pubkey -noout -in %s/ca.crt | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex" % PKI,
                         shell=True, capture_output=True, text=True).stdout
    return "sha256:" + pub.strip().split("= ")[-1]


def sign(name, cn, org=None, sans=None):
    key, csr, crt = f"{PKI}/{name}.key", f"{PKI}/{name}.csr", f"{PKI}/{name}.crt"
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subj, "-keyout", key, "-out", csr)
    ext = PKI + f"/{name}.ext"
    with open(ext, "w") as f:
        if sans:
            alt = ",".join(("IP:" if re.match(r"^[0-9.]+$", s) else "DNS:") + s for s in sans)
            f.write(f"subjectAltName={alt}\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", PKI + "/ca.crt", "-CAkey", PKI + "/ca.key", "-CAcreateserial",
            "-days", "365", "-extfile", ext, "-out", crt)
    os.chmod(key, 0o600)
    return crt, key


def b64file(p):
    with open(p, "rb") as f:
        return base64.b64encode(f.read()).decode()


def write_kubeconfig(path, server, cluster, user, crt=None, key=None):
    lines = ["apiVersion: v1", "kind: Config", "clusters:", "- cluster:",
             f"    certificate-authority-data: {b64file(PKI + '/ca.crt')}", f"    server: {server}", f"  name: {cluster}",
             "contexts:", "- context:", f"    cluster: {cluster}", f"    user: {user}", f"  name: {user}@{cluster}",
             f"current-context: {user}@{cluster}", "users:", f"- name: {user}", "  user:"]
    if crt:
        lines += [f"    client-certificate-data: {b64file(crt)}", f"    client-key-data: {b64file(key)}"]
    else:
        lines += ["    token: double-token"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def kubeconfig_server(path):
    try:
        with open(path) as f:
            for line in f:
                if line.strip().startswith("server:"):
                    return line.split("server:", 1)[1].strip()
    except FileNotFoundError:
        pass
    return None


# ---------------------------------------------------------------- kubeadm

def read_config(path):
    try:
        text = open(path).read()
    except FileNotFoundError:
        die(f"unable to read config from \"{path}\"")
    docs = [d for d in re.split(r"^---\s*$", text, flags=re.M) if d.strip()]
    out = {}
    for d in docs:
        try:
            v = json.loads(d)
        except json.JSONDecodeError as e:
            die(f"error unmarshaling {path}: {e}")
        out[v.get("kind")] = v
    return out


def check_api_version(doc, version):
    api = doc.get("apiVersion", "")
    minor = int(version.split(".")[1])
    if api == "kubeadm.k8s.io/v1beta4" and minor < 31:
        die(f'no kind "{doc.get("kind")}" is registered for version "kubeadm.k8s.io/v1beta4" in scheme (kubeadm {version})')
    if api not in ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"):
        die(f"unsupported kubeadm config apiVersion {api}")
    args = doc.get("nodeRegistration", {}).get("kubeletExtraArgs")
    if args is not None:
        if api.endswith("v1beta4") and not isinstance(args, list):
            die('strict decoding error: kubeletExtraArgs must be a list of {name, value} in v1beta4')
        if api.endswith("v1beta3") and not isinstance(args, dict):
            die("strict decoding error: kubeletExtraArgs must be a map in v1beta3")


def installed():
    """Packages the apt-get double (simple.sh) installed: name -> version."""
    try:
        return dict(line.split()[:2] for line in open(STATE + "/dpkg") if len(line.split()) >= 2)
    except FileNotFoundError:
        return {}


def modules():
    try:
        return [line.strip() for line in open(STATE + "/modules")]
    except FileNotFoundError:
        return []


def preflight(kind):
    errors = []
    if "kubeadm" not in installed():
        errors.append("[ERROR FileExisting-kubelet]: kubelet not found in system path")
    if not os.path.exists(STATE + "/swapoff"):
        errors.append("[ERROR Swap]: running with swap on is not supported. Please disable swap")
    # As real kubeadm: the file, whether br_netfilter was loaded or is built in.
    if "br_netfilter" not in modules() and not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        errors.append("[ERROR FileContent--proc-sys-net-bridge-bridge-nf-call-iptables]: /proc/sys/net/bridge/bridge-nf-call-iptables does not exist")
    if kind == "init" and os.path.exists(MANIFESTS + "/kube-apiserver.yaml"):
        errors.append("[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists")
    if kind == "join" and os.path.exists(K8S + "/kubelet.conf"):
        errors.append("[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists")
    if errors:
        die("[preflight] Some fatal errors occurred:\n" + "\n".join("\t" + e for e in errors) +
            "\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`")


def pod_manifest(name, command):
    os.makedirs(MANIFESTS, exist_ok=True)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "kube-system"},
           "spec": {"containers": [{"name": name, "command": command}], "hostNetwork": True}}
    with open(f"{MANIFESTS}/{name}.yaml", "w") as f:
        json.dump(pod, f, indent=1)


def etcd_manifest(node, ip, initial_cluster, state):
    pod_manifest("etcd", ["/usr/bin/etcd", "--name", node, "--data-dir", "/var/lib/etcd/member-data",
                          "--listen-client-urls", f"http://{ip}:2379,http://127.0.0.1:2379",
                          "--advertise-client-urls", f"http://{ip}:2379",
                          "--listen-peer-urls", f"http://{ip}:2380", "--initial-advertise-peer-urls", f"http://{ip}:2380",
                          "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
                          "--listen-metrics-urls", "http://127.0.0.1:2381",
                          "--heartbeat-interval", "100", "--election-timeout", "1000"])


def apiserver_manifest(node, ip, version):
    pod_manifest("kube-apiserver", ["/usr/bin/python3", LIB + "/apiserver.py", "--bind", "0.0.0.0", "--port", "6443",
                                    "--cert", PKI + "/apiserver.crt", "--key", PKI + "/apiserver.key",
                                    "--node", node, "--version", version])
    for other in ("kube-controller-manager", "kube-scheduler"):
        pod_manifest(other, None)


def kubeconfigs(endpoint, cluster, node):
    server = f"https://{endpoint}"
    crt, key = sign("admin", "kubernetes-admin", "system:masters")
    write_kubeconfig(K8S + "/admin.conf", server, cluster, "kubernetes-admin", crt, key)
    write_kubeconfig(K8S + "/super-admin.conf", server, cluster, "kubernetes-super-admin", crt, key)
    for f in ("controller-manager", "scheduler"):
        write_kubeconfig(f"{K8S}/{f}.conf", server, cluster, f"system:kube-{f}", crt, key)
    write_kubeconfig(K8S + "/kubelet.conf", server, cluster, f"system:node:{node}")


def node_registration(cfg):
    reg = cfg.get("nodeRegistration", {})
    args = reg.get("kubeletExtraArgs", {})
    if isinstance(args, list):
        args = {a["name"]: a["value"] for a in args}
    return reg.get("name"), args.get("node-ip", node_ip())


def join_command(endpoint, token, hash_, cert_key=None):
    cmd = f"kubeadm join {endpoint} --token {token} \\\n\t--discovery-token-ca-cert-hash {hash_}"
    if cert_key:
        cmd += f" \\\n\t--control-plane --certificate-key {cert_key}"
    return cmd


def kubeadm_init(args):
    path = args[args.index("--config") + 1]
    cfg = read_config(path)
    init, cluster = cfg.get("InitConfiguration", {}), cfg.get("ClusterConfiguration", {})
    version = cluster.get("kubernetesVersion", "v0.0.0").lstrip("v")
    check_api_version(init, version)
    check_api_version(cluster, version)
    preflight("init")
    node, ip = node_registration(init)
    endpoint = cluster["controlPlaneEndpoint"]
    token = init["bootstrapTokens"][0]["token"]
    cert_key = init.get("certificateKey")
    print("[init] Using Kubernetes version: v" + version)
    make_ca()
    sign("apiserver", "kube-apiserver", sans=cluster.get("apiServer", {}).get("certSANs", []) + [ip])
    kubeconfigs(endpoint, cluster.get("clusterName", "kubernetes"), node)
    etcd_manifest(node, ip, f"{node}=http://{ip}:2380", "new")
    apiserver_manifest(node, ip, "v" + version)
    systemctl(["start", "kubelet"])
    wait("etcd to be healthy", etcd_healthy, 60)
    h = ca_hash()
    now = time.time()
    info = {"endpoint": endpoint, "caHash": h, "tokens": {token: now + go_duration(init["bootstrapTokens"][0].get("ttl", "24h0m0s"))}, "version": "v" + version,
            "podSubnet": cluster.get("networking", {}).get("podSubnet"),
            "etcd": [f"http://{ip}:2379"], "ca": {"crt": open(PKI + "/ca.crt").read(), "key": open(PKI + "/ca.key").read()}}
    if "--upload-certs" in args:
        info["certificateKey"], info["certsUploaded"] = cert_key, now
        print("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace")
        print(f"[upload-certs] Using certificate key:\n{cert_key}")
    kv_put("/doubles/cluster", info)
    kv_put(f"/doubles/nodes/{node}", {"role": "control-plane", "ip": ip})
    wait("the API server to be ready", lambda: api(f"https://{ip}:6443", "GET", "/readyz")[0] == 200, 60)
    print("\nYour Kubernetes control-plane has initialized successfully!\n")
    print("You can now join any number of control-plane nodes running the following command on each as root:\n")
    print("  " + join_command(endpoint, token, h, cert_key) + "\n")
    print("Then you can join any number of worker nodes by running the following on each as root:\n")
    print(join_command(endpoint, token, h))


def cluster_info(endpoint):
    code, body = api(f"https://{endpoint}", "GET", "/doubles/cluster-info")
    if code != 200:
        die(f"error execution phase preflight: couldn't validate the identity of the API Server: Get \"https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info\": {body}")
    return json.loads(body)


def kubeadm_join(args):
    path = args[args.index("--config") + 1]
    cfg = read_config(path).get("JoinConfiguration")
    if not cfg:
        die("no JoinConfiguration in " + path)
    disc = cfg["discovery"]["bootstrapToken"]
    endpoint = disc["apiServerEndpoint"]
    info = cluster_info(endpoint)
    check_api_version(cfg, info["version"].lstrip("v"))
    preflight("join")
    now = time.time()
    if info["tokens"].get(disc["token"], 0) < now:
        die(f"error execution phase preflight: couldn't validate the identity of the API Server: token id \"{disc['token'].split('.')[0]}\" is invalid for this cluster or it has expired. Use \"kubeadm token create\" on the control-plane node to create a new valid token")
    if info["caHash"] not in disc.get("caCertHashes", []):
        die(f"error execution phase preflight: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{info['caHash']}\" are pinned")
    node, ip = node_registration(cfg)
    # kubeadm prints a line per phase; like kubeadm, the double dies on the next line once
    # nobody reads its output any more (the SSH session that ran it is gone).
    say("[preflight] Running pre-flight checks")
    cp = cfg.get("controlPlane")
    if cp:
        if cp.get("certificateKey") != info.get("certificateKey") or now - info.get("certsUploaded", 0) > 7200:
            die("error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: "
                "Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. "
                "Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one")
        os.makedirs(PKI + "/etcd", exist_ok=True)
        with open(PKI + "/ca.crt", "w") as f:
            f.write(info["ca"]["crt"])
        with open(PKI + "/ca.key", "w") as f:
            f.write(info["ca"]["key"])
        os.chmod(PKI + "/ca.key", 0o600)
        sign("apiserver", "kube-apiserver", sans=[ip, node, endpoint.rsplit(":", 1)[0]])
        kubeconfigs(endpoint, "kubernetes", node)
        say("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"")
        # Test hook: a join that takes a while here (kubelet.conf written, no etcd member yet).
        slow = STATE + "/slow-join"
        if os.path.exists(slow):
            time.sleep(float(open(slow).read().strip() or "3"))
        say("[control-plane-join] Adding etcd member")
        members = ",".join(info["etcd"])

        def add():
            # Like kubeadm, retry while etcd calls the cluster unhealthy: it refuses a new
            # member until the previous one has been connected for a while (strict reconfig).
            deadline = time.time() + 120
            while True:
                r = etcdctl(members, "member", "add", node, f"--peer-urls=http://{ip}:2380", check=False)
                if r.returncode == 0 or "unhealthy cluster" not in r.stderr or time.time() > deadline:
                    break
                time.sleep(1)
            if r.returncode != 0:
                die(f"error execution phase control-plane-join/etcd: error creating local etcd static pod manifest file: {r.stderr.strip()}")
            m = re.search(r'ETCD_INITIAL_CLUSTER="([^"]+)"', r.stdout)
            if not m:
                die("etcd member add gave no initial cluster: " + r.stdout)
            return m.group(1)

        initial = phase("etcd-member-add", add)
        # Test hook: the node dies right after its etcd member was added (the worst moment: the
        # cluster counts a member that never starts). Once.
        crash = STATE + "/crash-after-member-add"
        if os.path.exists(crash):
            os.remove(crash)
            log_call("kubeadm", sys.argv[1:], time.time(), 137)
            os._exit(137)
        say("[control-plane-join] Creating static Pod manifest for local etcd")
        etcd_manifest(node, ip, initial, "existing")
        apiserver_manifest(node, ip, info["version"])
        systemctl(["start", "kubelet"])
        wait("the new etcd member to be healthy", etcd_healthy, 60)
        info = kv_get("/doubles/cluster") or info
        info["etcd"] = sorted(set(info["etcd"] + [f"http://{ip}:2379"]))
        kv_put("/doubles/cluster", info)
        kv_put(f"/doubles/nodes/{node}", {"role": "control-plane", "ip": ip})
        print("\nThis node has joined the cluster and a new control plane instance was created")
    else:
        # Like kubeadm: the cluster CA from cluster-info, then the kubelet's kubeconfig.
        os.makedirs(PKI, exist_ok=True)
        with open(PKI + "/ca.crt", "w") as f:
            f.write(info["ca"]["crt"])
        write_kubeconfig(K8S + "/kubelet.conf", f"https://{endpoint}", "kubernetes", f"system:node:{node}")
        systemctl(["start", "kubelet"])
        time.sleep(0.5)  # a worker's TLS bootstrap takes a moment; it also makes overlap visible
        code, body = api(f"https://{endpoint}", "POST", f"/doubles/nodes/{node}", {"role": "worker", "ip": ip})
        if code != 200:
            die(f"failed to register node {node}: {body}")
        print("\nThis node has joined the cluster")


def kubeadm_reset(args):
    """Like kubeadm reset -f: leave etcd if this node is a member (a warning when that cannot
    be done, as kubeadm does), stop the kubelet and the static pods, delete what init and join
    wrote. hacluster's own files under /etc/kubernetes/hacluster stay."""
    if "-f" not in args and "--force" not in args:
        die("[reset] Are you sure you want to proceed? [y/N]: aborted (no terminal); use -f")
    ip = node_ip()
    say("[reset] Reading configuration from the cluster...")
    server = next((kubeconfig_server(c) for c in (K8S + "/admin.conf", K8S + "/kubelet.conf") if os.path.exists(c)), None)
    if os.path.exists(MANIFESTS + "/etcd.yaml") and server:
        code, body = api(server, "GET", "/doubles/cluster-info")
        info = json.loads(body) if code == 200 else None
        others = [e for e in (info or {}).get("etcd", []) if e != f"http://{ip}:2379"]
        removed = False
        if others:
            r = etcdctl(",".join(others), "member", "list", "-w", "json", check=False)
            mine = [m for m in (json.loads(r.stdout).get("members", []) if r.returncode == 0 else [])
                    if f"http://{ip}:2380" in m.get("peerURLs", [])]
            for m in mine:
                rm = etcdctl(",".join(others), "member", "remove", format(m["ID"], "x"), check=False)
                removed = rm.returncode == 0
                if not removed:
                    say(f"[reset] Failed to remove etcd member: {rm.stderr.strip()}. Please manually remove this etcd member using etcdctl")
            if removed:
                info["etcd"] = others
                etcdctl(",".join(others), "put", "/doubles/cluster", json.dumps(info), check=False)
                say("[reset] Removed this node's etcd member from the cluster")
    systemctl(["stop", "kubelet"])
    # Like the container runtime's cleanup: the static pods go too.
    for pidf in glob.glob(STATE + "/pods/*.pid"):
        pid = pid_alive(pidf)
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.remove(pidf)
    for d in (MANIFESTS, PKI, "/var/lib/etcd", "/var/lib/kubelet"):
        for entry in glob.glob(d + "/*"):
            subprocess.run(["rm", "-rf", entry], check=False)
    for conf in glob.glob(K8S + "/*.conf"):
        os.remove(conf)
    say("[reset] Deleted contents of: [/etc/kubernetes/manifests /var/lib/etcd /var/lib/kubelet /etc/kubernetes/pki]")


def go_duration(text):
    """Seconds in a Go duration such as kubeadm's "2h0m0s"."""
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text))


def kubeadm(args):
    if args[:1] == ["reset"]:
        kubeadm_reset(args)
    elif args[:1] == ["init"] and args[1:3] == ["phase", "upload-certs"]:
        cfg = read_config(args[args.index("--config") + 1])["InitConfiguration"]
        info = kv_get("/doubles/cluster")
        info["certificateKey"], info["certsUploaded"] = cfg["certificateKey"], time.time()
        kv_put("/doubles/cluster", info)
        print(f"[upload-certs] Using certificate key:\n{cfg['certificateKey']}")
    elif args[:1] == ["init"]:
        kubeadm_init(args)
    elif args[:1] == ["join"]:
        kubeadm_join(args)
    elif args[:2] == ["token", "create"]:
        if "--config" in args:
            # Like kubeadm: the file's first bootstrap token, and no flag that the file sets.
            mixed = [a.lstrip("-").split("=")[0] for a in args[2:] if a.startswith("--")
                     and a.lstrip("-").split("=")[0] not in ("config", "print-join-command", "kubeconfig", "dry-run", "v")]
            if mixed:
                die(f"can not mix '--config' with arguments {mixed}")
            cfg = read_config(args[args.index("--config") + 1]).get("InitConfiguration") or {}
            bt = cfg.get("bootstrapTokens", [{}])[0]
            token = bt.get("token") or die("no bootstrap token in the config")
            ttl = go_duration(bt.get("ttl", "24h0m0s"))  # kubeadm's default TTL is 24 h
        else:
            token = args[2] if len(args) > 2 and not args[2].startswith("-") else "double.0123456789abcdef"
            ttl = go_duration(args[args.index("--ttl") + 1]) if "--ttl" in args else 86400
        info = kv_get("/doubles/cluster")
        info["tokens"][token] = time.time() + ttl
        kv_put("/doubles/cluster", info)
        if "--print-join-command" in args:
            # Real kubeadm (1.37, seen) prints this one on one line, unlike init's.
            print(f"kubeadm join {info['endpoint']} --token {token} --discovery-token-ca-cert-hash {info['caHash']} ")
    elif args[:3] == ["config", "images", "list"]:
        # As real kubeadm 1.37 names them (pause is what the node preparation asks for).
        repo = args[args.index("--image-repository") + 1] if "--image-repository" in args else "registry.k8s.io"
        print(f"{repo}/pause:3.10.2")
    elif args[:1] == ["version"]:
        print(installed().get("kubeadm", "unknown"))
    else:
        die(f"kubeadm double: unsupported arguments {args}")


# ---------------------------------------------------------------- kubectl

def kubectl(args):
    kc = K8S + "/admin.conf"
    if "--kubeconfig" in args:
        i = args.index("--kubeconfig")
        kc = args[i + 1]
        args = args[:i] + args[i + 2:]
    ns = "default"
    if "-n" in args:
        i = args.index("-n")
        ns = args[i + 1]
        args = args[:i] + args[i + 2:]
    server = kubeconfig_server(kc)
    if not server:
        die(f"error: stat {kc}: no such file or directory")
    if args[:3] == ["get", "nodes", "-o"]:
        code, body = api(server, "GET", "/api/v1/nodes")
        if code != 200:
            die(f"The connection to the server {server} was refused - did you specify the right host or port? ({body})")
        print(body)
    elif args[:2] == ["get", "node"]:
        code, body = api(server, "GET", f"/api/v1/nodes/{args[2]}")
        if code == 0:
            die(f"The connection to the server {server} was refused - did you specify the right host or port?")
        if code != 200:
            die(f'Error from server (NotFound): nodes "{args[2]}" not found')
        print(f"{args[2]}   registered")
    elif args[:2] == ["delete", "node"]:
        code, body = api(server, "DELETE", f"/api/v1/nodes/{args[2]}")
        if code == 0:
            die(f"The connection to the server {server} was refused - did you specify the right host or port?")
        if code == 404 and "--ignore-not-found" not in args:
            die(f'Error from server (NotFound): nodes "{args[2]}" not found')
        if code == 200:
            print(f'node "{args[2]}" deleted')
    elif args[:2] == ["get", "daemonset"]:
        code, body = api(server, "GET", f"/doubles/objects/daemonset/{ns}/{args[2]}")
        if code == 0:
            die(f"The connection to the server {server} was refused - did you specify the right host or port? ({body})")
        if code != 200:
            die(f'Error from server (NotFound): daemonsets.apps "{args[2]}" not found')
        print(f"{args[2]}   present")
    elif args[:2] == ["get", "--raw"]:
        code, body = api(server, "GET", args[2])
        if code != 200:
            die(f"Error from server: {body}")
        print(body)
    elif args[:2] == ["apply", "-f"]:
        text = open(args[2]).read()
        objs = []
        for doc in re.split(r"^---\s*$", text, flags=re.M):
            kind = re.search(r"^kind:\s*(\S+)", doc, re.M)
            name = re.search(r"^  name:\s*(\S+)", doc, re.M)
            nsm = re.search(r"^  namespace:\s*(\S+)", doc, re.M)
            if kind and name:
                objs.append({"kind": kind.group(1).lower(), "name": name.group(1), "namespace": nsm.group(1) if nsm else "default"})
        cidr = re.search(r"CALICO_IPV4POOL_CIDR\s*\n\s*value:\s*\"([^\"]+)\"", text) or re.search(r'"Network": "([^"]+)"', text)
        code, body = api(server, "POST", "/doubles/apply", {"objects": objs, "podCidr": cidr.group(1) if cidr else None})
        if code != 200:
            die(f"error: {body}")
        for o in objs:
            print(f"{o['kind']}/{o['name']} created")
    elif args[:1] == ["exec"] and "--" in args:
        # `kubectl exec etcd-<node> -- etcdctl ...`: the etcd image's etcdctl, here the real one
        # against this node's real member (plain HTTP: the TLS flags have nothing to do).
        pod, cmd = args[1], args[args.index("--") + 1:]
        local = load(MANIFESTS + "/etcd.yaml")
        command = local["spec"]["containers"][0]["command"] if local else []
        name = command[command.index("--name") + 1] if "--name" in command else None
        if ns != "kube-system" or pod != f"etcd-{name}":
            die(f'Error from server (NotFound): pods "{pod}" not found')
        if cmd[:1] != ["etcdctl"]:
            die(f"exec: {cmd[:1]} is not in the etcd double's image")
        rest = [a for a in cmd[1:] if not a.startswith(("--cacert", "--cert", "--key", "--endpoints"))]
        r = etcdctl("http://127.0.0.1:2379", *rest, check=False)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        sys.exit(r.returncode)
    else:
        die(f"kubectl double: unsupported arguments {args}")


# ---------------------------------------------------------------- kubelet (supervisor) and systemctl

def pid_alive(path):
    try:
        pid = int(open(path).read())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def kubelet(args):
    """Runs static pods from /etc/kubernetes/manifests, stops those whose manifest is gone."""
    pods = STATE + "/pods"
    os.makedirs(pods, exist_ok=True)
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    while running:
        wanted = {}
        for f in glob.glob(MANIFESTS + "/*.yaml"):
            pod = load(f)
            if pod:
                cmd = pod["spec"]["containers"][0].get("command")
                if cmd:
                    wanted[pod["metadata"]["name"]] = cmd
        for name, cmd in wanted.items():
            pidf = f"{pods}/{name}.pid"
            if not pid_alive(pidf):
                logf = open(f"/var/log/hacluster-doubles/{name}.log", "a")
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
                with open(pidf, "w") as f:
                    f.write(str(p.pid))
        for pidf in glob.glob(pods + "/*.pid"):
            name = os.path.basename(pidf)[:-4]
            if name not in wanted:
                pid = pid_alive(pidf)
                if pid:
                    os.killpg(pid, signal.SIGTERM)
                    for _ in range(50):
                        # A stopping kubelet leaves the rest to the container runtime.
                        if not pid_alive(pidf) or not running:
                            break
                        time.sleep(0.1)
                if not running:
                    break
                os.remove(pidf)
        time.sleep(0.3)


def systemctl(args):
    args = [a for a in args if a not in ("--now", "-q", "--quiet", "--no-block")]
    action, units = args[0], args[1:]
    svc = load(STATE + "/services.json", {})
    for unit in units:
        if unit == "kubelet":
            pidf = STATE + "/kubelet.pid"
            if action in ("stop", "restart") and pid_alive(pidf):
                pid = pid_alive(pidf)
                os.kill(pid, signal.SIGTERM)
                # Like systemd: wait for the stop, then SIGKILL.
                for _ in range(300):
                    if not pid_alive(pidf):
                        break
                    time.sleep(0.1)
                else:
                    os.kill(pid, signal.SIGKILL)
                    time.sleep(0.2)
            if action in ("start", "restart") or (action == "enable" and "--now" in sys.argv):
                if not pid_alive(pidf) and os.path.exists(K8S + "/kubelet.conf"):
                    os.makedirs("/var/log/hacluster-doubles", exist_ok=True)
                    logf = open("/var/log/hacluster-doubles/kubelet.log", "a")
                    p = subprocess.Popen([sys.executable, os.path.realpath(__file__), "--as", "kubelet"], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
                    with open(pidf, "w") as f:
                        f.write(str(p.pid))
            if action == "is-active":
                print("active" if pid_alive(pidf) else "inactive")
                sys.exit(0 if pid_alive(pidf) else 3)
        svc[unit] = {"action": action, "at": time.time()}
    save(STATE + "/services.json", svc)


def main():
    argv = sys.argv[:]
    tool = os.path.basename(argv[0])
    if len(argv) > 2 and argv[1] == "--as":
        tool, argv = argv[2], [argv[2]] + argv[3:]
    args = argv[1:]
    start = time.time()
    rc = 0
    try:
        if tool == "kubeadm":
            kubeadm(args)
        elif tool == "kubectl":
            kubectl(args)
        elif tool == "kubelet":
            kubelet(args)
        elif tool == "systemctl":
            systemctl(args)
        else:
            die(f"unknown double {tool}")
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
        raise
    except BaseException:
        # E.g. BrokenPipeError: its reader (the SSH session) is gone.
        rc = 1
        raise
    finally:
        if tool != "kubelet":
            log_call(tool, args, start, rc)


if __name__ == "__main__":
    main()
