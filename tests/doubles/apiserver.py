#!/usr/bin/python3
"""TEST DOUBLE of kube-apiserver for hacluster's bootstrap tests: HTTPS on the node's address,
port 6443, with the certificate the kubeadm double signed. Health (/readyz, /livez, /healthz)
follows the node's REAL etcd member; the few objects the bootstrap reads (nodes, the CNI's
DaemonSet, cluster-info for joins) are kept in etcd, so every control plane serves the same
cluster, as real API servers do.
"""
import argparse
import base64
import json
import ssl
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ETCD = "http://127.0.0.1:2379"


def etcd(path, body):
    req = urllib.request.Request(ETCD + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=3) as r:
        return json.loads(r.read())


def b64(s):
    return base64.b64encode(s.encode()).decode()


def get(key):
    out = etcd("/v3/kv/range", {"key": b64(key)})
    kvs = out.get("kvs", [])
    return json.loads(base64.b64decode(kvs[0]["value"])) if kvs else None


def prefix(p):
    end = p[:-1] + chr(ord(p[-1]) + 1)
    out = etcd("/v3/kv/range", {"key": b64(p), "range_end": b64(end)})
    return {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"])) for kv in out.get("kvs", [])}


def put(key, value):
    etcd("/v3/kv/put", {"key": b64(key), "value": b64(json.dumps(value))})


def delete(key):
    return int(etcd("/v3/kv/deleterange", {"key": b64(key)}).get("deleted", 0))


def etcd_healthy():
    try:
        with urllib.request.urlopen("http://127.0.0.1:2381/health", timeout=2) as r:
            return json.loads(r.read()).get("health") == "true"
    except Exception:
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-double"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def node(self, name, n, cni):
        ready = cni and n.get("ip") is not None
        return {"metadata": {"name": name, "labels": {"node-role.kubernetes.io/control-plane": ""} if n.get("role") == "control-plane" else {}},
                "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                           "reason": "KubeletReady" if ready else "NetworkPluginNotReady"}],
                           "addresses": [{"type": "InternalIP", "address": n.get("ip")}]}}

    def do_GET(self):
        p = self.path
        try:
            if p in ("/readyz", "/livez", "/healthz"):
                return self.reply(200, "ok", "text/plain") if etcd_healthy() else self.reply(500, "[-]etcd failed: reason withheld", "text/plain")
            if not etcd_healthy():
                return self.reply(503, {"message": "etcd has no leader"})
            if p == "/version":
                return self.reply(200, {"gitVersion": self.server.version})
            if p == "/doubles/cluster-info":
                info = get("/doubles/cluster")
                return self.reply(200, info) if info else self.reply(404, {"message": "cluster-info not found"})
            if p.startswith("/api/v1/nodes"):
                cni = get("/doubles/cni") is not None
                nodes = {k.rsplit("/", 1)[1]: v for k, v in prefix("/doubles/nodes/").items()}
                name = p[len("/api/v1/nodes/"):] if p.startswith("/api/v1/nodes/") else None
                if name:
                    return self.reply(200, self.node(name, nodes[name], cni)) if name in nodes else self.reply(404, {"message": "not found"})
                return self.reply(200, {"kind": "NodeList", "apiVersion": "v1", "items": [self.node(k, v, cni) for k, v in sorted(nodes.items())]})
            if p.startswith("/doubles/objects/"):
                obj = get(p[len("/doubles"):])
                return self.reply(200, obj) if obj else self.reply(404, {"message": "not found"})
            self.reply(404, {"message": f"the double does not serve {p}"})
        except Exception as e:
            self.reply(503, {"message": f"etcd unavailable: {e}"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        try:
            if self.path.startswith("/doubles/nodes/"):
                put(self.path, body)
                return self.reply(200, {"status": "registered"})
            if self.path == "/doubles/apply":
                for o in body.get("objects", []):
                    put(f"/objects/{o['kind']}/{o['namespace']}/{o['name']}", o)
                    if o["kind"] == "daemonset" and o["name"] in ("calico-node", "kube-flannel-ds", "cilium"):
                        put("/doubles/cni", {"name": o["name"], "podCidr": body.get("podCidr")})
                return self.reply(200, {"status": "applied"})
            self.reply(404, {"message": "not found"})
        except Exception as e:
            self.reply(503, {"message": f"etcd unavailable: {e}"})


    def do_DELETE(self):
        try:
            if self.path.startswith("/api/v1/nodes/"):
                name = self.path[len("/api/v1/nodes/"):]
                if delete(f"/doubles/nodes/{name}"):
                    return self.reply(200, {"status": "deleted"})
                return self.reply(404, {"message": f'nodes "{name}" not found'})
            self.reply(404, {"message": "not found"})
        except Exception as e:
            self.reply(503, {"message": f"etcd unavailable: {e}"})


class TLSServer(ThreadingHTTPServer):
    # The TLS handshake happens in the connection's own thread, so one slow or broken client
    # (a health check that hangs up) cannot stall the others.
    daemon_threads = True

    def finish_request(self, request, client_address):
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=6443)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--version", default="v0.0.0")
    a = ap.parse_args()
    srv = TLSServer((a.bind, a.port), Handler)
    srv.version = a.version
    srv.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.ctx.load_cert_chain(a.cert, a.key)
    srv.serve_forever()


if __name__ == "__main__":
    main()
