#!/usr/bin/env python3
"""The lab's TLS client: the classic "safe TLS client", run on demand by labctl.

It grows from the textbook pattern

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    raw = socket.create_connection((host, port))
    tls = context.wrap_socket(raw, server_hostname=host)

The name is resolved by the system resolver, whose resolv.conf points at the
lab's DNS server, so the lookup crosses the wire like any real one would; with
--dns dot or --dns doh it asks the same resolver over TLS (RFC 7858, port 853)
or over HTTPS (RFC 8484, POST of the DNS message to /dns-query, HTTP/2 by curl),
checking the resolver's certificate like any other.

With --browse it acts as a person at a browser instead: it starts from a bare
name over plain HTTP, follows redirects, finds the login form and posts the
secret as its password field to wherever the form says. It keeps an HSTS
store (RFC 6797): --hsts-from URL is an earlier visit whose
Strict-Transport-Security header it remembers, --hsts-preload HOST a preload
list entry; a known host is never asked for over plain HTTP again (8.3).

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
import html.parser
import json
import re
import secrets
import socket
import ssl
import struct
import subprocess
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
DNS_WAYS = ("system", "dot", "doh")
RESOLVER_NAME = "dns.lab.test"     # the name on the resolver's certificate
MAX_REDIRECTS = 5
RCODES = {1: "format error", 2: "server failure", 3: "no such name", 4: "not implemented", 5: "refused"}  # RFC 1035 4.1.1


class DnsError(Exception):
    """The name did not resolve (the message says why)."""


# -- resolving: the system resolver, or the same resolver over TLS or HTTPS -----------------

def system_resolver() -> str:
    """The first nameserver of /etc/resolv.conf (lab-init points it at the lab's resolver)."""
    with open("/etc/resolv.conf") as handle:
        for line in handle:
            words = line.split()
            if words[:1] == ["nameserver"] and len(words) > 1:
                return words[1]
    raise DnsError("no nameserver in /etc/resolv.conf")


def dns_query(name: str) -> tuple[int, bytes]:
    """A recursive A query for NAME (RFC 1035 4.1), with a random ID; (id, message)."""
    qid = secrets.randbits(16)
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.rstrip(".").split("."))
    return qid, struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", 1, 1)


def _skip_name(message: bytes, pos: int) -> int:
    while True:
        if pos >= len(message):
            raise DnsError("answer cut short")
        length = message[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


def dns_addresses(message: bytes, qid: int) -> list[str]:
    """The A records of a DNS answer to query QID; DnsError for an error or a stranger's answer."""
    if len(message) < 12:
        raise DnsError("answer shorter than a DNS header")
    rid, flags, qdcount, ancount = struct.unpack("!HHHH", message[:8])
    if rid != qid:
        raise DnsError(f"answer for query {rid}, not ours ({qid})")
    if flags & 0xF:
        rcode = flags & 0xF
        raise DnsError(f"the resolver answered rcode {rcode}" + (f" ({RCODES[rcode]})" if rcode in RCODES else ""))
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(message, pos) + 4
    found = []
    for _ in range(ancount):
        pos = _skip_name(message, pos)
        rtype, _class, _ttl, length = struct.unpack("!HHIH", message[pos:pos + 10])
        pos += 10
        if rtype == 1 and length == 4:
            found.append(socket.inet_ntoa(message[pos:pos + 4]))
        pos += length
    return found


def resolve_dot(name: str, resolver: str, cafile: str, timeout: float, report: dict) -> list[str]:
    """NAME's addresses from RESOLVER over TLS (RFC 7858: port 853, each message after a 2-byte length)."""
    qid, query = dns_query(name)
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((resolver, 853), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=RESOLVER_NAME) as tls:
        report["resolver"] = {"via": "dot", "address": resolver, "port": 853,
                              "local_port": tls.getsockname()[1], "version": tls.version()}
        tls.sendall(struct.pack("!H", len(query)) + query)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = tls.recv(4096)
            if not chunk:
                raise DnsError("the resolver closed the connection before answering")
            data += chunk
    return dns_addresses(data[2:2 + struct.unpack("!H", data[:2])[0]], qid)


def resolve_doh(name: str, resolver: str, cafile: str, timeout: float, report: dict) -> list[str]:
    """NAME's addresses from RESOLVER over HTTPS (RFC 8484: POST application/dns-message to
    https://dns.lab.test/dns-query). curl speaks the HTTP/2 that DoH servers require."""
    qid, query = dns_query(name)
    argv = ["curl", "-sS", "--http2", "--cacert", cafile, "--max-time", f"{timeout:g}",
            "--resolve", f"{RESOLVER_NAME}:443:{resolver}", "-H", "content-type: application/dns-message",
            "-H", "accept: application/dns-message", "--data-binary", "@-", "-o", "-",
            "-w", "%{stderr}%{http_version} %{http_code} %{local_port}",
            f"https://{RESOLVER_NAME}/dns-query"]
    proc = subprocess.run(argv, input=query, capture_output=True, timeout=timeout + 5)
    said = proc.stderr.decode("latin-1").strip().splitlines()
    if proc.returncode != 0:
        raise DnsError(f"DNS over HTTPS failed: {said[0] if said else f'curl exit status {proc.returncode}'}")
    version, status, local_port = (said[-1].split() + ["?", "?", "0"])[:3]
    report["resolver"] = {"via": "doh", "address": resolver, "port": 443,
                          "local_port": int(local_port) if local_port.isdigit() else None,
                          "http_version": version}
    if status != "200":
        raise DnsError(f"DNS over HTTPS: the resolver answered HTTP {status}")
    return dns_addresses(proc.stdout, qid)


def resolve(args: argparse.Namespace, host: str, port: int, report: dict) -> str:
    """HOST's first IPv4 address, asked the way --dns says."""
    if args.dns == "system":
        report.setdefault("resolver", {"via": "system"})
        return socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    way = resolve_dot if args.dns == "dot" else resolve_doh
    addresses = way(host, system_resolver(), args.cafile, args.timeout, report)
    if not addresses:
        raise DnsError(f"the resolver has no address for {host}")
    return addresses[0]


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


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (every request here says Connection: close)."""
    chunks = []
    while True:
        data = sock.recv(1 << 16)
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_response(sock: socket.socket) -> tuple[str, int]:
    """Read until the server closes; return the status line and body size."""
    head, _, body = read_all(sock).partition(b"\r\n\r\n")
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
        address = resolve(args, args.host, args.port, report)
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
        if not report["status"].startswith("HTTP/"):
            # e.g. an HTTP/2-only server (the resolver's DNS over HTTPS) closing on an HTTP/1.1 request
            report.update(ok=False, error_kind="http", error="the server closed the connection without an HTTP "
                          "response" if not report["status"] else f"not an HTTP response: {report['status'][:60]!r}")
            return report | {"seconds": round(time.monotonic() - started, 4)}
        report["ok"] = True
    except ssl.SSLCertVerificationError as exc:
        report.update(ok=False, error=exc.verify_message or str(exc), error_kind="certificate")
    except ssl.SSLError as exc:
        report.update(ok=False, error=exc.reason or str(exc), error_kind="tls")
    except socket.gaierror as exc:
        report.update(ok=False, error=f"cannot resolve {args.host}: {exc.strerror}", error_kind="dns")
    except DnsError as exc:
        report.update(ok=False, error=f"cannot resolve {args.host}: {exc}", error_kind="dns")
    except (TimeoutError, subprocess.TimeoutExpired):
        # Its own kind: labctl turns it into "raise --timeout", never into a verdict.
        report.update(ok=False, error=f"timed out after {args.timeout:g} s", error_kind="timeout")
    except OSError as exc:
        report.update(ok=False, error=exc.strerror or str(exc), error_kind="network")
    report["seconds"] = round(time.monotonic() - started, 4)
    return report


# -- browsing: a person at a browser, from a bare name ------------------------------------

class FormFinder(html.parser.HTMLParser):
    """The action of the first <form> on a page ("" when it has none)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form" and self.action is None:
            self.action = dict(attrs).get("action") or ""


def hsts_max_age(value: str) -> int | None:
    """The max-age of a Strict-Transport-Security header value (RFC 6797 6.1.1); None if it has none."""
    for directive in value.split(";"):
        name, _, number = directive.strip().partition("=")
        if name.strip().lower() == "max-age" and number.strip().strip('"').isdigit():
            return int(number.strip().strip('"'))
    return None


def fetch(args: argparse.Namespace, context: ssl.SSLContext, method: str, url: str, body: bytes,
          report: dict) -> tuple[int, dict[str, str], bytes, dict]:
    """One HTTP/1.1 request to URL (http or https), on a connection of its own.

    Returns the status, the headers (names lower-cased), the body, and the
    step as the report lists it: the URL, the address and local port (to find
    it in the capture), the status and where a redirect pointed.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    step: dict = {"method": method, "url": url}
    try:
        address = resolve(args, host, port, report)
    except socket.gaierror as exc:
        raise DnsError(f"{host}: {exc.strerror}") from None
    raw = socket.create_connection((address, port), timeout=args.timeout)
    step.update(address=address, local_port=raw.getsockname()[1])
    sock: socket.socket = context.wrap_socket(raw, server_hostname=host) if parts.scheme == "https" else raw
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Host": host, "User-Agent": "tlslab-browser/1", "Connection": "close"}
    if body:
        headers.update({"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))})
    request = (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
               + "\r\n").encode() + body
    with sock:
        sock.sendall(request)
        head, _, content = read_all(sock).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if len(lines[0].split()) > 1 and lines[0].split()[1].isdigit() else 0
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    step["status"] = lines[0]
    if "location" in fields:
        step["location"] = fields["location"]
    return status, fields, content, step


def browse(args: argparse.Namespace) -> dict:
    """Type a bare name, follow redirects, log in: the secret goes wherever the page's form says.

    The HSTS store (RFC 6797) holds the --hsts-preload hosts and those whose
    earlier visit (--hsts-from, over HTTPS with a valid certificate) sent
    Strict-Transport-Security with a max-age above 0; an http:// URL for a
    host in it is rewritten to https:// before any byte is sent (8.3).
    """
    report: dict = {"host": args.host, "browse": True, "verify": not args.insecure, "steps": [],
                    "hsts": sorted(args.hsts_preload)}
    context = make_context(args)
    known = {host.lower().rstrip(".") for host in args.hsts_preload}     # host names match case-insensitively
    started = time.monotonic()

    def go(method: str, url: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "http" and (parts.hostname or "").rstrip(".") in known:
            # 8.3: the scheme becomes https; port 80 becomes 443, any other port is kept.
            netloc = parts.hostname or ""
            if parts.port not in (None, 80):
                netloc += f":{parts.port}"
            url = urllib.parse.urlunsplit(("https", netloc, parts.path, parts.query, ""))
            report["steps"].append({"upgraded": True, "url": url, "hsts": parts.hostname})
        status, fields, content, step = fetch(args, context, method, url, body, report)
        report["steps"].append(step)
        sts = fields.get("strict-transport-security")
        if sts is not None and url.startswith("https://"):      # ignored over plain HTTP (8.1)
            age = hsts_max_age(sts)
            host = (urllib.parse.urlsplit(url).hostname or "").rstrip(".")
            if age:
                known.add(host)
            else:
                known.discard(host)
            step["hsts"] = sts
        return status, fields, content

    try:
        if args.hsts_from:
            go("GET", args.hsts_from)                   # the earlier visit
            report["hsts"] = sorted(known)
        url = f"http://{args.host}{args.path}"          # what a person types: no scheme
        for _ in range(MAX_REDIRECTS + 1):
            status, fields, content = go("GET", url)
            if status in (301, 302, 303, 307, 308) and "location" in fields:
                url = urllib.parse.urljoin(url, fields["location"])
                continue
            break
        finder = FormFinder()
        finder.feed(content.decode("utf-8", "replace"))
        if finder.action is None:
            last = report["steps"][-1]              # where it really went (after any HSTS upgrade)
            raise ValueError(f"no login form at {last.get('url')} ({last.get('status')})")
        action = urllib.parse.urljoin(url, finder.action)
        form = urllib.parse.urlencode({"user": "student", "password": args.secret or ""}).encode()
        report["form_action"] = action
        status, fields, content = go("POST", action, form)
        posted = report["steps"][-1]
        report.update(ok=200 <= status < 400, status=posted["status"], secret_sent_to=posted["url"],
                      body_bytes=len(content))
    except ssl.SSLCertVerificationError as exc:
        report.update(ok=False, error=exc.verify_message or str(exc), error_kind="certificate")
    except ssl.SSLError as exc:
        report.update(ok=False, error=exc.reason or str(exc), error_kind="tls")
    except (socket.gaierror, DnsError) as exc:
        report.update(ok=False, error=f"cannot resolve: {exc}", error_kind="dns")
    except (TimeoutError, subprocess.TimeoutExpired):
        report.update(ok=False, error=f"timed out after {args.timeout:g} s", error_kind="timeout")
    except ValueError as exc:
        report.update(ok=False, error=str(exc), error_kind="http")
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
    parser.add_argument("--dns", choices=DNS_WAYS, default="system",
                        help="how to resolve HOST: the system resolver (clear DNS, port 53), or the same "
                             "resolver over TLS (dot, :853) or over HTTPS (doh, :443)")
    parser.add_argument("--browse", action="store_true",
                        help="a person at a browser: http://HOST/PATH typed bare, redirects followed, the "
                             "secret posted as the password of the page's login form")
    parser.add_argument("--hsts-from", metavar="URL",
                        help="with --browse: an earlier visit (https://...) whose Strict-Transport-Security "
                             "header is remembered")
    parser.add_argument("--hsts-preload", metavar="HOST", action="append", default=[],
                        help="with --browse: a host on the HSTS preload list (never asked over plain HTTP)")
    return parser


HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _host_name(name: str) -> bool:
    """Letters, digits and '-', dot-separated labels of at most 63, 253 in all (RFC 1123 2.1)."""
    return 0 < len(name) <= 253 and all(HOST_LABEL.fullmatch(part) for part in name.rstrip(".").split("."))


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse and check the arguments; bad ones end here with argparse's error (exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    browse_port = args.port
    if args.port is None:
        args.port = 80 if args.plain else 443
    for name in (args.host, args.sni):
        if name is not None and not _host_name(name):
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
    if (args.hsts_from or args.hsts_preload) and not args.browse:
        parser.error("--hsts-from and --hsts-preload belong to --browse")
    if args.hsts_from is not None:
        where = urllib.parse.urlsplit(args.hsts_from) if not CONTROL.search(args.hsts_from) else None
        try:
            _ = where.port if where else None            # urllib raises on a port out of range
        except ValueError:
            where = None
        if where is None or where.scheme != "https" or not where.hostname or not _host_name(where.hostname):
            parser.error(f"--hsts-from {args.hsts_from[:40]!r} must be an https:// URL with a host name, and no "
                         "control characters (HSTS is only read over TLS)")
    for host in args.hsts_preload:
        if not _host_name(host):
            parser.error(f"--hsts-preload {host[:40]!r} is not a host name")
    if args.browse:
        if args.plain:
            parser.error("--browse starts over plain HTTP by itself; --plain does not apply")
        ignored = [flag for flag, value, default in (("--port", browse_port, None), ("--sni", args.sni, None),
                                                      ("--secret-in", args.secret_in, "cookie"),
                                                      ("--alpn", args.alpn, "http/1.1"))
                   if value != default]
        if ignored:
            parser.error(f"{ignored[0]} does not apply to --browse (it follows the site's own URLs, and posts the "
                         "secret as the login form's password)")
        if not args.secret:
            parser.error("--browse needs --secret: the password it posts to the login form")
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
                report = browse(args) if args.browse else client(args)
                failures = failures + 1 if report.get("error_kind") in ("network", "dns", "timeout") else 0
                reports.append(report)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=parallel) as pool:
                reports = list(pool.map(lambda a: browse(a) if a.browse else client(a), parsed))
        json.dump(reports, sys.stdout)
        sys.stdout.write("\n")
        return 0
    args = parse(argv)
    report = browse(args) if args.browse else client(args)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
