#!/usr/bin/env python3
"""The lab's TLS client: the classic "safe TLS client", run on demand by labctl.

It grows from the textbook pattern

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    raw = socket.create_connection((host, port))
    tls = context.wrap_socket(raw, server_hostname=host)

The name is resolved by the system resolver, whose resolv.conf points at the
lab's DNS server, so the lookup crosses the wire like any real one would.

It sends one HTTP/1.1 request that carries a secret (in a cookie, an
Authorization header or a password form field), reads the reply, and prints
one JSON object describing what happened: the address it connected to, the
negotiated version and cipher, the peer certificate, the status and body
size, or the exact error if the connection was refused.

Exit status: 0 when the exchange completed, 1 when TLS or the network
refused it (the JSON says why), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import socket
import ssl
import sys
import time
import urllib.parse

TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
SECRET_PLACES = ("cookie", "authorization", "form")
GIVE_UP_AFTER = 3        # consecutive network failures in a batch before the rest are skipped


def make_context(args: argparse.Namespace) -> ssl.SSLContext:
    """The safe default context; --insecure is the careless client."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.cafile)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if args.min_version:
        context.minimum_version = TLS_VERSIONS[args.min_version]
    if args.max_version:
        context.maximum_version = TLS_VERSIONS[args.max_version]
    if args.ciphers:
        context.set_ciphers(args.ciphers)
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    if args.keylog:
        context.keylog_filename = args.keylog
    if args.alpn:
        context.set_alpn_protocols(args.alpn.split(","))
    return context


def build_request(args: argparse.Namespace) -> bytes:
    """One HTTP/1.1 request with the secret where --secret-in says."""
    headers = {"Host": args.host, "User-Agent": "tlslab-client/1", "Connection": "close"}
    body = b""
    method = "GET"
    if args.secret:
        if args.secret_in == "cookie":
            headers["Cookie"] = f"session={args.secret}"
        elif args.secret_in == "authorization":
            token = base64.b64encode(f"student:{args.secret}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        else:
            method = "POST"
            body = urllib.parse.urlencode({"user": "student", "password": args.secret}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
    if method == "POST":
        headers["Content-Length"] = str(len(body))
    lines = [f"{method} {args.path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket) -> tuple[str, int]:
    """Read until the server closes; return the status line and body size."""
    chunks = []
    while True:
        data = sock.recv(1 << 16)
        if not data:
            break
        chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    return status, len(body)


def client(args: argparse.Namespace) -> dict:
    report: dict = {"host": args.host, "port": args.port, "tls": not args.plain,
                    "verify": not args.insecure}
    try:
        context = None if args.plain else make_context(args)
    except (OSError, ssl.SSLError, ValueError) as exc:
        report.update(ok=False, error=f"bad client settings: {exc}", error_kind="config")
        return report
    started = time.monotonic()
    try:
        addrinfo = socket.getaddrinfo(args.host, args.port, socket.AF_INET, socket.SOCK_STREAM)
        address = addrinfo[0][4][0]
        report["address"] = address
        raw = socket.create_connection((address, args.port), timeout=args.timeout)
        report["local_port"] = raw.getsockname()[1]      # finds this connection in the capture
        sock: socket.socket = raw
        if context is not None:
            sock = context.wrap_socket(raw, server_hostname=args.sni or args.host)
            report["version"] = sock.version()
            report["cipher"] = sock.cipher()[0]
            report["peer_certificate"] = sock.getpeercert() or None
        request = build_request(args)
        # The exact bytes sent, so labctl can show that the decrypted
        # ciphertext on the wire is this request, secret and all.
        report["request"] = request.decode("latin-1")
        if isinstance(sock, ssl.SSLSocket):
            report["alpn"] = sock.selected_alpn_protocol()
        with sock:
            sock.sendall(request)
            report["status"], report["body_bytes"] = read_response(sock)
        report["ok"] = True
    except ssl.SSLCertVerificationError as exc:
        report.update(ok=False, error=exc.verify_message or str(exc), error_kind="certificate")
    except ssl.SSLError as exc:
        report.update(ok=False, error=exc.reason or str(exc), error_kind="tls")
    except socket.gaierror as exc:
        report.update(ok=False, error=f"cannot resolve {args.host}: {exc.strerror}", error_kind="dns")
    except TimeoutError:
        # Its own kind: labctl turns it into "raise --timeout", never into a verdict.
        report.update(ok=False, error=f"timed out after {args.timeout:g} s", error_kind="timeout")
    except OSError as exc:
        report.update(ok=False, error=exc.strerror or str(exc), error_kind="network")
    report["seconds"] = round(time.monotonic() - started, 4)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="client.py",
        description="The lab's safe TLS client: one HTTP request carrying a secret; prints a JSON report.")
    parser.add_argument("host", help="server name to resolve, connect to and verify (e.g. server.lab.test)")
    parser.add_argument("--port", type=int, help="server port (default 443, or 80 with --plain)")
    parser.add_argument("--path", default="/", help="what to request, e.g. / or /bytes/4096")
    parser.add_argument("--secret", help="the secret to send (a password or session token)")
    parser.add_argument("--secret-in", choices=SECRET_PLACES, default="cookie", help="where the request carries it")
    parser.add_argument("--cafile", default="/certs/ca.crt", help="CA certificate(s) to trust")
    parser.add_argument("--sni", help="server name to send and verify, if not HOST")
    parser.add_argument("--min-version", choices=TLS_VERSIONS, help="lowest TLS version to accept")
    parser.add_argument("--max-version", choices=TLS_VERSIONS, help="highest TLS version to offer")
    parser.add_argument("--ciphers", help="OpenSSL cipher string for TLS 1.2 and older")
    parser.add_argument("--insecure", action="store_true", help="the careless client: no certificate or name check")
    parser.add_argument("--cert", help="client certificate chain (PEM), for mutual TLS")
    parser.add_argument("--key", help="private key of --cert")
    parser.add_argument("--alpn", default="http/1.1", help="ALPN protocols to offer, comma-separated ('' for none)")
    parser.add_argument("--keylog", help="write the NSS key log here (lets Wireshark decrypt the capture)")
    parser.add_argument("--plain", action="store_true", help="no TLS at all: the same request over plain TCP")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the network")
    return parser


HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse and check the arguments; bad ones end here with argparse's error (exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = 80 if args.plain else 443
    for name in (args.host, args.sni):
        if name is not None and (len(name) > 253 or not all(HOST_LABEL.fullmatch(part)
                                                             for part in name.rstrip(".").split("."))):
            parser.error(f"{name[:60]!r}{'…' if len(name) > 60 else ''} is not a host name "
                         "(letters, digits and '-', dot-separated labels of at most 63, 253 in all)")
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not a TCP port (1-65535)")
    if not 0 < args.timeout <= 86400:             # also refuses nan
        parser.error(f"--timeout {args.timeout} must be more than 0 and at most 86400 seconds")
    for option in ("path", "secret", "alpn", "ciphers"):
        value = getattr(args, option)
        if value is not None and CONTROL.search(value):
            parser.error(f"--{option} {value[:40]!r} holds a control character (a newline would "
                         "split the request)")
    if not args.path.startswith("/"):
        parser.error(f"--path {args.path[:40]!r} must start with '/'")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--batch"]:
        # Many exchanges in one process: `--batch '[["expired.lab.test", "--insecure"], ...]'`
        # prints one JSON list. The verification matrix runs 30 handshakes this way
        # in one `docker exec` instead of thirty. `--parallel N` runs N at once
        # (the load test: 200 concurrent TLS clients).
        parallel = 1
        if len(argv) == 4 and argv[2] == "--parallel" and argv[3].isdigit():
            parallel = max(1, int(argv[3]))
        elif len(argv) != 2:
            build_parser().error("--batch takes one JSON list of argument lists [--parallel N]")
        try:
            runs = json.loads(argv[1])
        except json.JSONDecodeError as exc:
            build_parser().error(f"--batch: not JSON: {exc}")
        parsed = [parse([str(a) for a in run]) for run in runs]
        if parallel == 1:
            reports = []
            failures = 0
            for args in parsed:
                if failures >= GIVE_UP_AFTER:
                    # The lab stopped answering (a service died): report the rest as not
                    # attempted instead of waiting out every connection's timeout.
                    reports.append({"host": args.host, "port": args.port, "ok": False, "error_kind": "skipped",
                                    "error": f"not attempted: the {GIVE_UP_AFTER} connections before it "
                                             "failed at the network level"})
                    continue
                report = client(args)
                failures = failures + 1 if report.get("error_kind") in ("network", "dns", "timeout") else 0
                reports.append(report)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=parallel) as pool:
                reports = list(pool.map(client, parsed))
        json.dump(reports, sys.stdout)
        sys.stdout.write("\n")
        return 0
    report = client(parse(argv))
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
