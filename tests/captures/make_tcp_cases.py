"""How the "TCP damage and TLS in a stream" inputs of CASES.md were made (issue #13); run as root, once.

    python tests/captures/make_tcp_cases.py OUT_DIR

Real sessions on loopback, captured with dumpcap -i lo: OpenSSL 3.0's s_client
-starttls smtp/imap/pop3/ftp/postgres and -proxy (HTTP CONNECT) against tiny Python
servers, a SOCKS5 tunnel opened by hand, DTLS with s_server/s_client -dtls, and
a hand-built SSLv2-format ClientHello answered by s_server. Keys are
throwaway (made here, never kept). The damaged captures are cut from
tests/synth.py sessions with editcap (a segment removed, frames cut to a
snaplen, one side only) or rewritten with dpkt (sequence numbers that wrap).
Not run by the tests: the inputs it made are committed, with what tshark says.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import dpkt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests import synth  # noqa: E402


def certificate(folder: Path) -> tuple[Path, Path]:
    key, crt = folder / "key.pem", folder / "crt.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "30", "-subj", "/CN=mail.lab.test", "-addext", "subjectAltName=DNS:mail.lab.test"],
                   check=True, capture_output=True)
    return key, crt


class Capture:
    """dumpcap on loopback for one port, started before and stopped after a session."""

    def __init__(self, out: Path, bpf: str) -> None:
        self.proc = subprocess.Popen(["dumpcap", "-q", "-P", "-i", "lo", "-f", bpf, "-w", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)

    def stop(self) -> None:
        time.sleep(0.5)
        self.proc.terminate()
        self.proc.wait(10)


def serve_once(port: int, handler: Callable[[socket.socket], None]) -> threading.Thread:
    """Accept one connection on PORT and run HANDLER(sock) on it in a thread."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        try:
            handler(conn)
        finally:
            conn.close()
            listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def lines(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode()


def tls_server(context: ssl.SSLContext, sock: socket.socket, reply: bytes) -> None:
    tls = context.wrap_socket(sock, server_side=True)
    tls.recv(4096)
    tls.sendall(reply)
    try:
        tls.unwrap()
    except (ssl.SSLError, OSError):
        pass


def client(argv: list[str], text: bytes) -> None:
    subprocess.run(argv, input=text, capture_output=True, timeout=30)


def starttls(out: Path, context: ssl.SSLContext, protocol: str, port: int) -> None:
    def smtp(sock: socket.socket) -> None:
        sock.sendall(b"220 mail.lab.test ESMTP ready\r\n")
        lines(sock)                                                     # EHLO
        sock.sendall(b"250-mail.lab.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        lines(sock)                                                     # STARTTLS
        sock.sendall(b"220 2.0.0 Ready to start TLS\r\n")
        tls_server(context, sock, b"221 2.0.0 Bye\r\n")

    def imap(sock: socket.socket) -> None:
        sock.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] mail.lab.test ready\r\n")
        lines(sock)                                                     # . CAPABILITY
        sock.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n. OK CAPABILITY completed\r\n")
        lines(sock)                                                     # . STARTTLS
        sock.sendall(b". OK Begin TLS negotiation now\r\n")
        tls_server(context, sock, b"* BYE logging out\r\n")

    def pop3(sock: socket.socket) -> None:
        sock.sendall(b"+OK POP3 mail.lab.test ready\r\n")
        lines(sock)                                                     # STLS
        sock.sendall(b"+OK Begin TLS negotiation\r\n")
        tls_server(context, sock, b"+OK bye\r\n")

    def ftp(sock: socket.socket) -> None:
        sock.sendall(b"220-mail.lab.test FTP server\r\n220 ready\r\n")
        lines(sock)                                                     # AUTH TLS
        sock.sendall(b"234 AUTH TLS successful\r\n")
        tls_server(context, sock, b"221 Goodbye.\r\n")

    def postgres(sock: socket.socket) -> None:
        assert sock.recv(8) == bytes.fromhex("0000000804d2162f")      # SSLRequest
        sock.sendall(b"S")
        tls_server(context, sock, b"R\x00\x00\x00\x08\x00\x00\x00\x00")

    def connect(sock: socket.socket) -> None:
        request = b""
        while not request.endswith(b"\r\n\r\n"):
            request += sock.recv(1)
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        tls_server(context, sock, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi\n")

    handlers = {"smtp": smtp, "imap": imap, "pop3": pop3, "ftp": ftp, "postgres": postgres, "connect": connect}
    capture = Capture(out, f"tcp port {port}")
    thread = serve_once(port, handlers[protocol])
    if protocol == "connect":
        argv = ["openssl", "s_client", "-proxy", f"127.0.0.1:{port}", "-connect", "server.lab.test:443",
                "-servername", "server.lab.test"]
    else:
        argv = ["openssl", "s_client", "-starttls", protocol, "-connect", f"127.0.0.1:{port}",
                "-servername", "mail.lab.test"]
    client(argv, b"QUIT\r\n")
    thread.join(10)
    capture.stop()


def socks5(out: Path, context: ssl.SSLContext, port: int) -> None:
    def server(sock: socket.socket) -> None:
        assert sock.recv(3) == b"\x05\x01\x00"                         # version 5, one method: no auth
        sock.sendall(b"\x05\x00")
        request = sock.recv(4 + 1 + len("server.lab.test") + 2)       # CONNECT server.lab.test:443
        assert request[:4] == b"\x05\x01\x00\x03"
        sock.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x01\xbb")
        tls_server(context, sock, b"HTTP/1.1 204 No Content\r\n\r\n")

    capture = Capture(out, f"tcp port {port}")
    thread = serve_once(port, server)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"\x05\x01\x00")
    sock.recv(2)
    name = b"server.lab.test"
    sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", 443))
    sock.recv(10)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    tls = ctx.wrap_socket(sock, server_hostname="server.lab.test")
    tls.sendall(b"GET / HTTP/1.1\r\nHost: server.lab.test\r\n\r\n")
    tls.recv(4096)
    tls.close()
    thread.join(10)
    capture.stop()


def dtls(out: Path, key: Path, crt: Path, port: int) -> None:
    capture = Capture(out, f"udp port {port}")
    server = subprocess.Popen(["openssl", "s_server", "-dtls1_2", "-accept", str(port), "-key", key, "-cert", crt,
                               "-naccept", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        client(["openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}"], b"hello over DTLS\n")
        time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(10)
    capture.stop()


def sslv2_client_hello(version: int, specs: list[int]) -> bytes:
    """An SSLv2-format ClientHello (RFC 5246 appendix E.2): 2-byte header, msg_type 1, version, lengths, data."""
    challenge = os.urandom(32)
    cipher_specs = b"".join(spec.to_bytes(3, "big") for spec in specs)
    body = struct.pack("!BHHHH", 1, version, len(cipher_specs), 0, len(challenge)) + cipher_specs + challenge
    return struct.pack("!H", 0x8000 | len(body)) + body


def sslv2(out: Path, key: Path, crt: Path, port: int) -> None:
    capture = Capture(out, f"tcp port {port}")
    server = subprocess.Popen(["openssl", "s_server", "-tls1_2", "-accept", str(port), "-key", key, "-cert", crt,
                               "-cipher", "AES128-GCM-SHA256:AES128-SHA:@SECLEVEL=0", "-naccept", "1"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(sslv2_client_hello(0x0303, [0x00009C, 0x00002F, 0x010080]))
        sock.settimeout(2)
        try:
            while sock.recv(65536):
                pass
        except socket.timeout:
            pass
        sock.close()
        time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(10)
    capture.stop()


def editcap(*argv: str | Path) -> None:
    subprocess.run(["editcap", *map(str, argv)], check=True, capture_output=True)


def tshark_write(source: Path, display_filter: str, out: Path) -> None:
    subprocess.run(["tshark", "-r", str(source), "-Y", display_filter, "-w", str(out), "-F", "pcap"],
                   check=True, capture_output=True)


def frames_of(pcap: Path, display_filter: str) -> list[int]:
    out = subprocess.run(["tshark", "-r", str(pcap), "-n", "-Y", display_filter, "-T", "fields", "-e",
                          "frame.number"], check=True, capture_output=True, text=True).stdout
    return [int(n) for n in out.split()]


def rewrite(source: Path, out: Path, start: dict[int, int], drop: int) -> None:
    """SOURCE without its first DROP frames, each side's sequence numbers (and the peer's acks) moved so that
    the side sending from port P starts at START[P] (they wrap past 2^32 where START is near it)."""
    frames = list(dpkt.pcap.Reader(source.open("rb")))
    first: dict[int, int] = {}
    for _, raw in frames:
        tcp = dpkt.ethernet.Ethernet(raw).data.data
        first.setdefault(tcp.sport, tcp.seq)
    shift = {port: (start[port] - seq) % (1 << 32) for port, seq in first.items()}
    with out.open("wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, raw in frames[drop:]:
            eth = dpkt.ethernet.Ethernet(raw)
            ip = eth.data
            tcp = ip.data
            tcp.seq = (tcp.seq + shift[tcp.sport]) % (1 << 32)
            if tcp.flags & dpkt.tcp.TH_ACK:
                tcp.ack = (tcp.ack + shift[tcp.dport]) % (1 << 32)
            tcp.sum = 0
            ip.sum = 0
            writer.writepkt(bytes(eth), ts=ts)


def chatty_session(folder: Path, name: str, one_flight: bool) -> Path:
    """A TLS 1.2 session (tests/synth.py's in-memory pair) whose server answers in eight writes of 700
    bytes: eight application_data records of 729 bytes, each in a segment of its own, or (ONE_FLIGHT)
    sent together, straddling the 1448-byte segments."""
    key = folder / "chatty.key"
    crt = folder / "chatty.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=server.lab.test"],
                   check=True, capture_output=True)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(crt, key)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
    for ctx in (sctx, cctx):
        ctx.maximum_version = ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = cctx.wrap_bio(c_in, c_out, server_side=False, server_hostname="server.lab.test")
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    pipe = synth._Pipe(client, c_in, c_out, server, s_in, s_out)
    pipe.handshake()
    pipe.send(client, server, synth.DEFAULT_REQUEST)
    for n in range(8):
        pipe.send(server, client, bytes([0x41 + n]) * 700)
    pipe.close()
    chunks: list[tuple[str, bytes]] = []
    for direction, data in pipe.chunks:        # one flight per direction: records straddle the segments
        if one_flight and chunks and chunks[-1][0] == direction:
            chunks[-1] = (direction, chunks[-1][1] + data)
        else:
            chunks.append((direction, data))
    pcap = folder / f"{name}.pcap"
    synth.write_pcap(pcap, (synth.CLIENT_IP, 40404), (synth.SERVER_IP, 443), chunks)
    return pcap


def damaged(folder: Path, out: Path) -> None:
    """Captures cut from synth sessions with editcap, tshark -w, or dpkt."""
    chatty = chatty_session(folder, "chatty", one_flight=True)
    records = chatty_session(folder, "records", one_flight=False)
    tls13 = synth.tls_session(folder, name="tls13")
    # A hole that swallows record headers: the server's second segment of application data goes, so
    # the walk must find a record again by a segment that opens with its header (here only the alert).
    data = frames_of(chatty, "tcp.srcport == 443 && tcp.len > 0 && tcp.seq > 1400")
    editcap(chatty, out / "hole_header_tls12.pcap", data[1])
    # A hole that is one whole record (a segment of its own): the next segment opens with the next header.
    data = frames_of(records, "tls.record.content_type == 23 && tcp.srcport == 443")
    editcap(records, out / "hole_record_tls12.pcap", data[2])
    editcap("-s", "100", tls13.pcap, out / "snap100_tls13.pcap")
    tshark_write(tls13.pcap, "tcp.srcport == 443", out / "server_only_tls13.pcap")
    tshark_write(tls13.pcap, "tcp.dstport == 443", out / "client_only_tls13.pcap")
    # No SYN, sequence numbers that wrap inside both the client's and the server's first flight.
    rewrite(chatty, out / "wrap_nosyn_tls12.pcap", {40404: (1 << 32) - 100, 443: (1 << 32) - 1000}, drop=3)
    # No SYN, both ports high, the capture starting after the ClientHello: the first frame is the
    # server's, so only the ServerHello tells which side is the client.
    skip = frames_of(chatty, "tls.handshake.type == 1")[0]
    rewrite_ports(chatty, out / "backwards_nosyn_tls12.pcap", 443, 8443, drop=skip)


def rewrite_ports(source: Path, out: Path, old: int, new: int, drop: int) -> None:
    with out.open("wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=dpkt.pcap.DLT_EN10MB)
        for number, (ts, raw) in enumerate(dpkt.pcap.Reader(source.open("rb")), 1):
            if number <= drop:
                continue
            eth = dpkt.ethernet.Ethernet(raw)
            tcp = eth.data.data
            tcp.sport = new if tcp.sport == old else tcp.sport
            tcp.dport = new if tcp.dport == old else tcp.dport
            tcp.sum = 0
            writer.writepkt(bytes(eth), ts=ts)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        key, crt = certificate(folder)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(crt, key)
        context.maximum_version = ssl.TLSVersion.TLSv1_2     # certificates in clear, for the analyzer to show
        starttls(out / "starttls_smtp.pcap", context, "smtp", 20025)
        starttls(out / "starttls_imap.pcap", context, "imap", 20143)
        starttls(out / "starttls_pop3.pcap", context, "pop3", 20110)
        starttls(out / "starttls_ftp.pcap", context, "ftp", 20021)
        starttls(out / "postgres_sslrequest.pcap", context, "postgres", 25432)
        starttls(out / "http_connect.pcap", context, "connect", 23128)
        socks5(out / "socks5.pcap", context, 21080)
        dtls(out / "dtls12.pcap", key, crt, 24433)
        sslv2(out / "sslv2_client_hello.pcap", key, crt, 24443)
        damaged(folder, out)


if __name__ == "__main__":
    main()
