"""Real TLS sessions, written as pcap files, made without root or Docker.

Two ssl.SSLContext objects (a client and a server) talk to each other
entirely in memory: each side's TLS engine reads from one ssl.MemoryBIO and
writes to another, and we carry the bytes across, recording exactly what each
side wrote, in order, with its direction. The client context writes an NSS key
log (SSLContext.keylog_filename), as the lab's client does with --keylog.

write_pcap then lays those bytes on a synthetic but well-formed wire:
Ethernet/IPv4/TCP with a three-way handshake, correct sequence and
acknowledgement numbers, 1448-byte segments (MSS 1460 minus the 12 bytes of
the TCP timestamps option, as on Linux), ACKs, and a FIN exchange, with
increasing timestamps. tshark and dpkt read the result like any real capture.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import dpkt

from labctl import certs

CLIENT_IP = "10.77.0.10"
SERVER_IP = "10.77.0.20"
SERVER_NAME = certs.SERVER_NAME
MSS = 1460
SEGMENT = MSS - 12            # payload per full segment: the timestamps option takes 12 bytes
WINDOW = 64256                # bytes; sent as 502 << 7 (window scale 7), Linux's default
WSCALE = 7

DEFAULT_REQUEST = (b"GET /account HTTP/1.1\r\n"
                   b"Host: server.lab.test\r\n"
                   b"User-Agent: tlslab-synth/1\r\n"
                   b"Cookie: session=s3cr3t-cookie-value\r\n"
                   b"Accept: */*\r\n"
                   b"Connection: close\r\n"
                   b"\r\n")


def http_response(body: bytes, content_type: str = "text/plain") -> bytes:
    """An HTTP/1.1 200 response carrying BODY."""
    head = (f"HTTP/1.1 200 OK\r\n"
            f"Server: tlslab-synth/1\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: close\r\n"
            f"\r\n").encode()
    return head + body


DEFAULT_RESPONSE = http_response(b"hello from server.lab.test: your balance is 1234.56\n")

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class Session:
    pcap: Path            # the pcap file
    keylog: Path | None   # NSS key log written by the client (None for plain)
    request: bytes        # application bytes the client sent
    response: bytes       # application bytes the server sent
    version: str          # e.g. "TLSv1.3", "TLSv1.2" ("" for plain)
    cipher: str           # OpenSSL cipher name negotiated ("" for plain)
    client: tuple[str, int]
    server: tuple[str, int]


def make_certs(tmp_path: Path) -> Path:
    """A trustme lab CA and server.lab.test certificates (RSA and ECDSA), in the lab's layout.

    Returns the folder; made once per folder (RSA keys take a moment).
    """
    folder = tmp_path / "certs"
    if not (folder / "server" / "server-rsa.crt").is_file():
        certs.generate(folder)
    return folder


# --- reaching past the ssl module ------------------------------------------
#
# Python's ssl module cannot choose TLS 1.3 suites (set_ciphers only affects
# TLS 1.2 and below) nor send a KeyUpdate. OpenSSL can: SSL_CTX_set_ciphersuites
# and SSL_key_update. We call them through ctypes on the SSL_CTX / SSL behind
# the Python objects, after checking that the pointers we found really are
# those objects (the context's options must match; the connection's SSL_CTX
# must be the context's).

class OpenSSLUnavailable(RuntimeError):
    """This Python/OpenSSL build does not let us reach the OpenSSL objects."""


_HEAD = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)   # PyObject_HEAD


def _libssl() -> ctypes.CDLL:
    name = ctypes.util.find_library("ssl")
    if name is None:
        raise OpenSSLUnavailable("libssl not found by ctypes")
    lib = ctypes.CDLL(name)
    for symbol in ("OpenSSL_version_num", "SSL_CTX_get_options", "SSL_CTX_set_ciphersuites",
                   "SSL_get_SSL_CTX", "SSL_key_update"):
        if not hasattr(lib, symbol):
            raise OpenSSLUnavailable(f"{name} has no {symbol}")
    lib.OpenSSL_version_num.restype = ctypes.c_ulong
    if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
        raise OpenSSLUnavailable(f"{name} is not the OpenSSL the ssl module uses")
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_set_ciphersuites.restype = ctypes.c_int
    lib.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.SSL_get_SSL_CTX.restype = ctypes.c_void_p
    lib.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
    lib.SSL_key_update.restype = ctypes.c_int
    lib.SSL_key_update.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _ssl_ctx(lib: ctypes.CDLL, context: ssl.SSLContext) -> int:
    """The SSL_CTX* of CONTEXT: PySSLContext is { PyObject_HEAD; SSL_CTX *ctx; ... } (Modules/_ssl.c)."""
    ctx = ctypes.c_void_p.from_address(id(context) + _HEAD).value
    if not ctx or lib.SSL_CTX_get_options(ctx) != int(context.options):
        raise OpenSSLUnavailable("cannot find the SSL_CTX behind this SSLContext")
    return ctx


def _ssl(lib: ctypes.CDLL, conn: ssl.SSLObject) -> int:
    """The SSL* of CONN: PySSLSocket is { PyObject_HEAD; PyObject *Socket; SSL *ssl; ... }."""
    inner = conn._sslobj   # the _ssl._SSLSocket behind an ssl.SSLObject
    pointer = ctypes.c_void_p.from_address(id(inner) + _HEAD + ctypes.sizeof(ctypes.c_void_p)).value
    if not pointer or lib.SSL_get_SSL_CTX(pointer) != _ssl_ctx(lib, conn.context):
        raise OpenSSLUnavailable("cannot find the SSL behind this SSLObject")
    return pointer


def set_tls13_ciphersuites(context: ssl.SSLContext, suites: str) -> None:
    """SSL_CTX_set_ciphersuites(context, SUITES), e.g. "TLS_CHACHA20_POLY1305_SHA256"."""
    lib = _libssl()
    if lib.SSL_CTX_set_ciphersuites(_ssl_ctx(lib, context), suites.encode()) != 1:
        raise ValueError(f"OpenSSL rejected TLS 1.3 cipher suites {suites!r}")


def request_key_update(conn: ssl.SSLObject) -> None:
    """SSL_key_update(conn, SSL_KEY_UPDATE_REQUESTED): a TLS 1.3 KeyUpdate goes out with the next write,
    and the peer answers with its own (RFC 8446 section 4.6.3)."""
    lib = _libssl()
    if lib.SSL_key_update(_ssl(lib, conn), 1) != 1:
        raise RuntimeError("SSL_key_update failed (is this TLS 1.3?)")


# --- DHE ---------------------------------------------------------------------

def ffdhe2048_prime() -> int:
    """The RFC 7919 ffdhe2048 prime, computed from its definition (appendix A.1):

    p = 2^2048 - 2^1984 + {[2^1918 * e] + 560316} * 2^64 - 1
    """
    guard = 64
    scale = 1 << (1918 + guard)
    e_scaled, term, k = 0, scale, 0
    while term:               # e = sum 1/k!, in fixed point with guard bits
        e_scaled += term
        k += 1
        term //= k
    floor_e = e_scaled >> guard
    return (1 << 2048) - (1 << 1984) + (floor_e + 560316) * (1 << 64) - 1


def _dh_params_file(folder: Path) -> Path:
    """PKCS#3 PEM of ffdhe2048 (generator 2), for SSLContext.load_dh_params: enables DHE suites."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dh

    path = folder / "ffdhe2048.pem"
    if not path.is_file():
        params = dh.DHParameterNumbers(ffdhe2048_prime(), 2).parameters()
        path.write_bytes(params.parameter_bytes(serialization.Encoding.PEM, serialization.ParameterFormat.PKCS3))
    return path


# --- an in-memory TLS session ----------------------------------------------

class _Pipe:
    """Both ends of an in-memory TLS connection, recording every byte written."""

    def __init__(self, client: ssl.SSLObject, c_in: ssl.MemoryBIO, c_out: ssl.MemoryBIO,
                 server: ssl.SSLObject, s_in: ssl.MemoryBIO, s_out: ssl.MemoryBIO) -> None:
        self.client, self.c_in, self.c_out = client, c_in, c_out
        self.server, self.s_in, self.s_out = server, s_in, s_out
        self.chunks: list[tuple[str, bytes]] = []

    def flush(self) -> bool:
        """Carry whatever each side wrote to the other; True if anything moved."""
        moved = False
        data = self.c_out.read()
        if data:
            self.chunks.append(("c2s", data))
            self.s_in.write(data)
            moved = True
        data = self.s_out.read()
        if data:
            self.chunks.append(("s2c", data))
            self.c_in.write(data)
            moved = True
        return moved

    @staticmethod
    def _step(call) -> bool:
        """Run one non-blocking TLS call; True when it completed."""
        try:
            call()
            return True
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False

    def handshake(self) -> None:
        done_c = done_s = False
        for _ in range(50):
            done_c = done_c or self._step(self.client.do_handshake)
            self.flush()
            done_s = done_s or self._step(self.server.do_handshake)
            self.flush()
            if done_c and done_s:
                return
        raise RuntimeError("in-memory TLS handshake did not finish")

    def send(self, sender: ssl.SSLObject, receiver: ssl.SSLObject, data: bytes) -> bytes:
        """SENDER writes DATA; RECEIVER reads until it has all of it."""
        sender.write(data)
        self.flush()
        got = b""
        for _ in range(10_000):
            try:
                got += receiver.read(65536)
            except ssl.SSLWantReadError:
                if not self.flush():
                    break
            if len(got) >= len(data):
                break
        self.flush()   # e.g. anything the receiver wrote while reading
        if got != data:
            raise RuntimeError(f"in-memory TLS lost data: sent {len(data)} bytes, got {len(got)}")
        return got

    def close(self) -> None:
        """close_notify both ways: the client starts, the server answers."""
        self._step(self.client.unwrap)
        self.flush()
        self._step(self.server.unwrap)
        self.flush()
        self._step(self.client.unwrap)
        self.flush()


def tls_session(tmp_path: Path, *, max_version: str = "1.3", ciphers: str | None = None,
                request: bytes = DEFAULT_REQUEST, response: bytes = DEFAULT_RESPONSE,
                server_name: str = SERVER_NAME, key_type: str = "rsa",
                tls13_ciphersuites: str | None = None, key_update: bool = False,
                name: str = "session") -> Session:
    """One real TLS connection (handshake, request, response, close), as NAME.pcap + NAME.keys.

    max_version "1.2" pins both sides to TLS 1.2; ciphers is an OpenSSL TLS 1.2
    cipher string (e.g. "AES128-GCM-SHA256", DHE suites work too);
    tls13_ciphersuites picks the TLS 1.3 suite and key_update makes the client
    send a KeyUpdate before its request (both raise OpenSSLUnavailable if this
    build cannot).
    """
    folder = make_certs(tmp_path)
    keylog = tmp_path / f"{name}.keys"
    keylog.unlink(missing_ok=True)

    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(folder / "server" / f"server-{key_type}.crt",
                         folder / "server" / f"server-{key_type}.key")
    sctx.load_dh_params(_dh_params_file(folder))
    cctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=folder / "client" / "ca.crt")
    cctx.keylog_filename = str(keylog)
    for ctx in (sctx, cctx):
        ctx.maximum_version = _VERSIONS[max_version]
        if max_version == "1.2":
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if ciphers:
            ctx.set_ciphers(ciphers)
        if tls13_ciphersuites:
            set_tls13_ciphersuites(ctx, tls13_ciphersuites)

    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = cctx.wrap_bio(c_in, c_out, server_side=False, server_hostname=server_name)
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    pipe = _Pipe(client, c_in, c_out, server, s_in, s_out)
    pipe.handshake()
    if key_update:
        request_key_update(client)
    pipe.send(client, server, request)
    pipe.send(server, client, response)
    pipe.close()

    version, cipher = client.version() or "", (client.cipher() or ("",))[0]
    ends = ((CLIENT_IP, _ephemeral_port()), (SERVER_IP, 443))
    pcap = tmp_path / f"{name}.pcap"
    write_pcap(pcap, ends[0], ends[1], pipe.chunks)
    return Session(pcap=pcap, keylog=keylog, request=request, response=response, version=version,
                   cipher=cipher, client=ends[0], server=ends[1])


def plain_session(tmp_path: Path, *, request: bytes, response: bytes, port: int = 80,
                  name: str = "plain") -> Session:
    """The same exchange without TLS (e.g. HTTP on port 80)."""
    ends = ((CLIENT_IP, _ephemeral_port()), (SERVER_IP, port))
    pcap = tmp_path / f"{name}.pcap"
    write_pcap(pcap, ends[0], ends[1], [("c2s", request), ("s2c", response)])
    return Session(pcap=pcap, keylog=None, request=request, response=response, version="",
                   cipher="", client=ends[0], server=ends[1])


def _ephemeral_port() -> int:
    return random.randint(32768, 60999)   # Linux's ip_local_port_range


# --- the wire ---------------------------------------------------------------

def _mac(ip: str) -> bytes:
    """Docker's MAC for an address: 02:42 followed by the four IPv4 bytes."""
    return b"\x02\x42" + socket.inet_aton(ip)


class _Wire:
    """Writes one TCP connection's frames, keeping sequence numbers and clocks."""

    def __init__(self, writer: dpkt.pcap.Writer, client: tuple[str, int], server: tuple[str, int]) -> None:
        self.writer = writer
        self.ends = {"c2s": (client, server), "s2c": (server, client)}
        self.seq = {"c2s": random.getrandbits(32), "s2c": random.getrandbits(32)}
        self.ip_id = {"c2s": random.getrandbits(16), "s2c": random.getrandbits(16)}
        self.tsval = {"c2s": random.getrandbits(31), "s2c": random.getrandbits(31)}
        self.last_tsval = {"c2s": 0, "s2c": 0}
        self.acked = {"c2s": 0, "s2c": 0}   # next seq the peer has acknowledged
        self.clock = time.time()
        self.start = self.clock

    def _ack_for(self, direction: str) -> int:
        """What DIRECTION's sender acknowledges: the other side's next sequence number."""
        return self.seq["s2c" if direction == "c2s" else "c2s"]

    def send(self, direction: str, flags: int, payload: bytes = b"", gap: float = 0.00005) -> None:
        (src, sport), (dst, dport) = self.ends[direction]
        self.clock += gap
        other = "s2c" if direction == "c2s" else "c2s"
        tsval = (self.tsval[direction] + int((self.clock - self.start) * 1000)) & 0xFFFFFFFF
        self.last_tsval[direction] = tsval
        if flags & dpkt.tcp.TH_SYN:
            # Linux's SYN options: MSS, SACK permitted, timestamps, NOP, window scale.
            opts = (struct.pack("!BBH", 2, 4, MSS) + b"\x04\x02"
                    + struct.pack("!BBII", 8, 10, tsval, self.last_tsval[other])
                    + b"\x01" + struct.pack("!BBB", 3, 3, WSCALE))
            window = 64240
        else:
            opts = b"\x01\x01" + struct.pack("!BBII", 8, 10, tsval, self.last_tsval[other])
            window = WINDOW >> WSCALE
        ack = self._ack_for(direction) if flags & dpkt.tcp.TH_ACK else 0
        tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=self.seq[direction], ack=ack, flags=flags,
                           win=window, opts=opts, data=payload)
        tcp.off = (20 + len(opts)) // 4
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_TCP,
                        ttl=64, id=self.ip_id[direction], df=1, data=tcp)
        # dpkt fills in the IP total length and both checksums when sum == 0.
        eth = dpkt.ethernet.Ethernet(src=_mac(src), dst=_mac(dst), type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
        self.writer.writepkt(bytes(eth), ts=self.clock)
        self.ip_id[direction] = (self.ip_id[direction] + 1) & 0xFFFF
        self.seq[direction] = (self.seq[direction] + len(payload)
                               + (1 if flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN) else 0)) & 0xFFFFFFFF
        if flags & dpkt.tcp.TH_ACK:
            self.acked[other] = ack

    def data(self, direction: str, payload: bytes, gap: float) -> None:
        """PAYLOAD as <=1448-byte segments; the peer ACKs every second one (delayed ACK)."""
        other = "s2c" if direction == "c2s" else "c2s"
        pieces = [payload[i:i + SEGMENT] for i in range(0, len(payload), SEGMENT)]
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            flags = dpkt.tcp.TH_ACK | (dpkt.tcp.TH_PUSH if last else 0)
            self.send(direction, flags, piece, gap=gap if n == 0 else 0.000012)
            if n % 2 == 1 and not last:
                self.send(other, dpkt.tcp.TH_ACK, gap=0.00003)

    def ack_pending(self, direction: str) -> None:
        """DIRECTION's sender acknowledges all it has received, if anything is unacknowledged."""
        if self.acked["s2c" if direction == "c2s" else "c2s"] != self._ack_for(direction):
            self.send(direction, dpkt.tcp.TH_ACK, gap=0.00004)


def write_pcap(path: Path, client: tuple[str, int], server: tuple[str, int],
               chunks: list[tuple[str, bytes]]) -> None:
    """Write CHUNKS (("c2s"|"s2c", bytes), in order) as one complete TCP connection."""
    syn, ack, fin = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=dpkt.pcap.DLT_EN10MB)
        wire = _Wire(writer, client, server)
        wire.send("c2s", syn, gap=0)
        wire.send("s2c", syn | ack, gap=0.00011)
        wire.send("c2s", ack, gap=0.00006)
        previous = "s2c"
        for direction, payload in chunks:
            if not payload:
                continue
            if direction not in ("c2s", "s2c"):
                raise ValueError(f"direction must be 'c2s' or 's2c', not {direction!r}")
            # A reply piggybacks its ACK; more data in the same direction waits
            # for the peer's ACK of what went before (one round trip).
            if direction == previous:
                wire.ack_pending("s2c" if direction == "c2s" else "c2s")
            wire.data(direction, payload, gap=0.00015 if direction != previous else 0.00002)
            previous = direction
        wire.ack_pending("s2c" if previous == "c2s" else "c2s")
        wire.send("c2s", fin | ack, gap=0.0002)
        wire.send("s2c", fin | ack, gap=0.00009)
        wire.send("c2s", ack, gap=0.00005)
