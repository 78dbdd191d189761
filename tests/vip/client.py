#!/usr/bin/python3
"""The client of the VIP test: every INTERVAL seconds a new TCP connection to HOST:6443, a TLS
handshake and GET /version, each bounded by TIMEOUT. Runs until the file STOP exists, then
prints one JSON line per attempt: {"t": start (monotonic s), "ok": bool, "node": answering
node or the error}."""
import json
import os
import socket
import ssl
import sys
import time


def main():
    host, interval, timeout, stop = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = []
    while not os.path.exists(stop):
        t = time.monotonic()
        try:
            with socket.create_connection((host, 6443), timeout=timeout) as raw:
                raw.settimeout(timeout)
                with ctx.wrap_socket(raw) as s:
                    s.sendall(b"GET /version HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n")[0].decode(errors="replace") or "empty answer")
            out.append({"t": t, "ok": True, "node": json.loads(body)["node"]})
        except Exception as e:  # every failure is a client-visible error
            out.append({"t": t, "ok": False, "node": f"{type(e).__name__}: {e}"})
        left = interval - (time.monotonic() - t)
        if left > 0:
            time.sleep(left)
    for o in out:
        print(json.dumps(o))


if __name__ == "__main__":
    main()
