#!/usr/bin/python3
"""A backend of the balancers' test (tests/e2e/vip.rs), where a control plane's API server
stands: HTTPS on IP:6443 answering GET /readyz (the health check HAProxy makes) and GET
/version (what the test's client asks, answered with the backend's name). That test measures
the balancers alone (VIP moves, HAProxy's redispatch); the real API servers behind the same
balancers are measured by the lab's `verify --chaos` (tests/e2e/real_cluster.rs)."""
import argparse
import json
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ip", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/readyz":
                body = b"ok"
            elif self.path == "/version":
                body = json.dumps({"node": args.name}).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer((args.ip, 6443), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
