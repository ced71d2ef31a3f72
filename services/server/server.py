#!/usr/bin/env python3
"""The lab's TLS server: the classic "safe TLS server", speaking HTTP/1.1.

It grows from the textbook pattern

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)

and serves the same small site twice: over TLS on --tls-port and over plain
TCP on --plain-port, so a scenario can show the same request with and without
TLS on the wire. With --tls-port 0 it serves plain HTTP only: the application
behind a reverse proxy that does TLS for it (services/proxy).

The site:

    GET  /               a short HTML page
    GET  /bytes/N        N bytes of body (0 <= N <= 1 GiB), for size and bulk tests
    GET  /login          the login page: a form whose action is https://HOST/login,
                         as a site that takes passwords only over TLS writes it
    POST /login          the form's target (a password field); the reply says welcome
    GET  /whoami         echoes the client certificate's subject (mutual TLS)

With --cases, each folder NAME/ holding cert.pem and key.pem is served for
NAME.lab.test, chosen by SNI (the verification cases: expired, wrong-host...);
--mtls-port and --tls12-port add listeners that require a client certificate
or stop at TLS 1.2.

Requests may carry a secret in a cookie, an Authorization header or a form
field; the server never logs it (look for it on the wire, not in the logs).

The key is read while the process still runs as root, then the process drops
to an unprivileged user before it accepts a single connection.
"""

from __future__ import annotations

import argparse
import http.server
import os
import pwd
import re
import socket
import ssl
import sys
import threading
from pathlib import Path

TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
MAX_BODY = 1 << 30
# The documents an observer will try to tell apart by size (labctl's
# traffic-analysis scenario), and the bucket the padding defence fills.
DOC_SIZES = (1200, 2900, 4700, 7300, 9800, 13100, 17600, 23900)
PAD_BUCKET = 32768
CHUNK = 1 << 16
HOST = re.compile(r"[a-z0-9.-]{1,253}")


class LabHandler(http.server.BaseHTTPRequestHandler):
    server_version = "tlslab-server/1"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/":
            self._reply(200, b"<!doctype html><title>tlslab</title><p>Hello from the lab server.\n",
                        "text/html; charset=utf-8")
        elif self.path.startswith("/bytes/"):
            self._send_bytes(self.path[len("/bytes/"):])
        elif self.path.startswith("/doc/") or self.path.startswith("/padded/doc/"):
            self._send_doc(self.path)
        elif self.path == "/login":
            # An absolute https:// action, as real login pages have: the one
            # link sslstrip rewrites (labctl's sslstrip scenario).
            host = self.headers.get("Host", "").split(":")[0]
            if not HOST.fullmatch(host):
                self._reply(400, b"bad Host header\n")
                return
            self._reply(200, (f'<!doctype html><title>log in</title><form method="post" '
                              f'action="https://{host}/login"><input name="user"><input name="password" '
                              f'type="password"><button>log in</button></form>\n').encode(),
                        "text/html; charset=utf-8")
        elif self.path == "/whoami":
            self._reply(200, _peer_subject(self.connection).encode() + b"\n")
        elif self.path == "/health":
            self._reply(200, b"ok\n")
        else:
            self._reply(404, b"not found\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(min(length, 1 << 20))
        if self.path == "/login":
            self._reply(200, b"welcome back\n")
        else:
            self._reply(404, b"not found\n")

    def _send_doc(self, path: str) -> None:
        """/doc/K: one of the site's documents, each of a distinct size (traffic analysis).
        /padded/doc/K: the same document padded to a common bucket (the defence)."""
        padded = path.startswith("/padded/")
        key = path.rsplit("/", 1)[1]
        if not key.isdigit() or int(key) >= len(DOC_SIZES):
            self._reply(404, b"no such document\n")
            return
        body = (f"document {key}\n".encode() * (DOC_SIZES[int(key)] // 11 + 1))[:DOC_SIZES[int(key)]]
        if padded:
            body += b" " * (PAD_BUCKET - len(body))
        self._reply(200, body)

    def _send_bytes(self, count_text: str) -> None:
        if not count_text.isdigit() or int(count_text) > MAX_BODY:
            self._reply(400, b"usage: /bytes/N with 0 <= N <= 1073741824\n")
            return
        count = int(count_text)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(count))
        self.end_headers()
        block = b"x" * CHUNK
        while count > 0:
            self.wfile.write(block[:min(count, CHUNK)])
            count -= CHUNK

    def _reply(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # One line per request, never the headers: the secret travels there.
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def _peer_subject(conn: socket.socket) -> str:
    if not isinstance(conn, ssl.SSLSocket):
        return "plain TCP: no client certificate"
    cert = conn.getpeercert()
    if not cert:
        return "no client certificate"
    return ", ".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)


def _close_gently(sock: socket.socket) -> None:
    """Send FIN and read what the client still sends before closing.

    In TLS 1.3 the client learns that its certificate was refused (alert
    certificate_required) only after it has sent its request. Closing at once
    would answer that request with a TCP RST, which can destroy the alert
    before the client reads it; draining first lets the alert arrive.
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_WR)
        sock.settimeout(1.0)
        while socket.socket.recv(sock, 4096):
            pass
    except OSError:
        pass
    finally:
        sock.close()


class TLSServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server that wraps each accepted socket in TLS.

    The handshake runs in the handler's thread (do_handshake_on_connect), so
    one slow or failing client never blocks the accept loop.
    """

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, LabHandler)

    def finish_request(self, request, client_address) -> None:  # type: ignore[override]
        tls = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            sys.stderr.write(f"{client_address[0]} TLS handshake failed: {exc}\n")
            _close_gently(tls)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def make_context(args: argparse.Namespace, cert: str | None = None, key: str | None = None,
                 max_version: str | None = None, require_client_cert: bool | None = None) -> ssl.SSLContext:
    """The safe default context, narrowed only where a flag (or a listener) says so."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = TLS_VERSIONS[args.min_version]
    context.maximum_version = TLS_VERSIONS[max_version or args.max_version]
    if args.ciphers:
        context.set_ciphers(args.ciphers)
    if args.require_client_cert if require_client_cert is None else require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=readable(args.client_ca))
    load_chain(context, cert or args.cert, key or args.key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def readable(path: str) -> str:
    """``path`` if this process can read it; else an OSError naming it."""
    if not os.access(path, os.R_OK):
        reason = "no such file" if not os.path.exists(path) else "not readable"
        raise OSError(f"cannot load {path}: {reason} (labctl fills /certs at `labctl up`)")
    return path


def load_chain(context: ssl.SSLContext, cert: str, key: str) -> None:
    """load_cert_chain, with an error that names the file (OpenSSL's "[Errno 2]" names none)."""
    try:
        context.load_cert_chain(readable(cert), readable(key))
    except ssl.SSLError as exc:
        raise OSError(f"cannot load {cert} with {key}: {exc.reason or exc}") from None


def add_cases(context: ssl.SSLContext, args: argparse.Namespace) -> list[str]:
    """Serve each folder of --cases under its own name, picked by SNI (as badssl.com does).

    cases/expired/{cert,key}.pem answers for expired.lab.test, and so on.
    A name with no folder gets the default certificate.
    """
    by_name: dict[str, ssl.SSLContext] = {}
    root = Path(args.cases)
    if not root.is_dir():
        return []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = f"{folder.name}.{args.domain}"
        by_name[name] = make_context(args, str(folder / "cert.pem"), str(folder / "key.pem"))

    def pick(sslobj: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        chosen = by_name.get(server_name or "")
        if chosen is not None:
            sslobj.context = chosen

    context.sni_callback = pick
    return sorted(by_name)


def drop_privileges(user: str) -> None:
    """Become USER for good (the certificate key is already in memory)."""
    if os.getuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def server(args: argparse.Namespace) -> None:
    servers: list[http.server.HTTPServer] = []
    names: list[str] = []
    if args.tls_port:
        context = make_context(args)
        names = add_cases(context, args)
        servers.append(TLSServer((args.host, args.tls_port), context))
    plain = http.server.ThreadingHTTPServer((args.host, args.plain_port), LabHandler)
    plain.daemon_threads = True
    servers.append(plain)
    cases = Path(args.cases)
    extra = []
    if args.mtls_port:
        # Its own port: whether a client certificate is required is settled
        # before the SNI callback could switch contexts.
        servers.append(TLSServer((args.host, args.mtls_port), make_context(
            args, str(cases / "mtls" / "cert.pem"), str(cases / "mtls" / "key.pem"), require_client_cert=True)))
        extra.append(f"mutual TLS on :{args.mtls_port}")
    if args.legacy_port:
        # A server stuck in the past: TLS 1.0 and 1.1 only (OpenSSL 3 needs
        # security level 0 to allow them at all). Safe clients refuse it.
        legacy = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        legacy.minimum_version = ssl.TLSVersion.TLSv1
        legacy.maximum_version = ssl.TLSVersion.TLSv1_1
        legacy.set_ciphers("DEFAULT:@SECLEVEL=0")
        load_chain(legacy, str(cases / "legacy" / "cert.pem"), str(cases / "legacy" / "key.pem"))
        servers.append(TLSServer((args.host, args.legacy_port), legacy))
        extra.append(f"legacy TLS 1.0-1.1 on :{args.legacy_port}")
    if args.tls12_port:
        servers.append(TLSServer((args.host, args.tls12_port), make_context(
            args, str(cases / "tls12-only" / "cert.pem"), str(cases / "tls12-only" / "key.pem"), max_version="1.2")))
        extra.append(f"TLS 1.2 only on :{args.tls12_port}")
    drop_privileges(args.user)
    if args.tls_port:
        print(f"Serving TLS on :{args.tls_port} and plain HTTP on :{args.plain_port} "
              f"as uid {os.getuid()}; TLS {args.min_version}..{args.max_version}; "
              f"{len(names)} names by SNI" + "".join(f"; {e}" for e in extra), flush=True)
    else:
        print(f"Serving plain HTTP only on {args.host}:{args.plain_port} as uid {os.getuid()}", flush=True)
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers[0].serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The lab's safe TLS server (HTTP/1.1 over TLS and over plain TCP).")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--tls-port", type=int, default=443, help="port for HTTPS (0: none, plain HTTP only)")
    parser.add_argument("--plain-port", type=int, default=80, help="port for the same site without TLS")
    parser.add_argument("--key-type", choices=("rsa", "ecdsa"), default="rsa",
                        help="which of the lab's certificates to serve: RSA (allows RSA key exchange) or ECDSA")
    parser.add_argument("--cert", help="certificate chain (PEM); default /certs/server-KEYTYPE.crt")
    parser.add_argument("--key", help="its private key (PEM); default /certs/server-KEYTYPE.key")
    parser.add_argument("--min-version", choices=TLS_VERSIONS, default="1.2", help="lowest TLS version accepted")
    parser.add_argument("--max-version", choices=TLS_VERSIONS, default="1.3", help="highest TLS version offered")
    parser.add_argument("--ciphers", help="OpenSSL cipher string for TLS 1.2 and older")
    parser.add_argument("--require-client-cert", action="store_true", help="mutual TLS: refuse clients without a certificate")
    parser.add_argument("--client-ca", default="/certs/ca.crt", help="CA that signs client certificates")
    parser.add_argument("--cases", default="/certs/cases",
                        help="folder of verification cases: NAME/{cert,key}.pem is served for NAME.DOMAIN by SNI")
    parser.add_argument("--domain", default="lab.test", help="domain of the case names")
    parser.add_argument("--mtls-port", type=int, default=0,
                        help="also listen here, requiring a client certificate (cert from CASES/mtls)")
    parser.add_argument("--tls12-port", type=int, default=0,
                        help="also listen here with TLS 1.2 at most (cert from CASES/tls12-only)")
    parser.add_argument("--legacy-port", type=int, default=0,
                        help="also listen here with TLS 1.0-1.1 only, a legacy server (cert from CASES/legacy)")
    parser.add_argument("--user", default="lab", help="unprivileged user to become after loading the key")
    args = parser.parse_args(argv)
    args.cert = args.cert or f"/certs/server-{args.key_type}.crt"
    args.key = args.key or f"/certs/server-{args.key_type}.key"
    try:
        server(args)
    except (OSError, ssl.SSLError) as exc:
        parser.exit(1, f"server: error: {exc}\n")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
