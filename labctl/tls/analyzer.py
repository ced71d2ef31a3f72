"""From a pcap to an Observation: what the wire saw, and what it gives away.

dpkt reads the capture (pcap or pcapng), the Ethernet/IPv4/TCP/UDP headers
and DNS messages; cryptography reads X.509 certificates. What is ours is the
glue that the libraries leave to the caller: TCP reassembly per direction
(TLS records cross segment boundaries, and on veth one "packet" can be 64 KB
of coalesced segments), then, with labctl.tls.records, walking the TLS record
layer over the reassembled stream and reading the handshake messages that
precede encryption.

Its parts: labctl.tls.pcapfile reads the file, labctl.tls.tcp reassembles,
labctl.tls.dns reads DNS messages, labctl.tls.records the TLS record layer.

The analyzer never raises on odd traffic: a stream that does not parse as
TLS is simply not TLS, and a capture with gaps says so. It does raise
CaptureFormatError for a file that is not a capture or is cut short.
"""

from __future__ import annotations

import bisect
import hashlib
import socket
import struct
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import dpkt
from cryptography import x509

from ..files import PathLike, shown
from . import der as der_walk
from .constants import (ALERT, APPLICATION_DATA, CERTIFICATE, CERTIFICATE_REQUEST, CHANGE_CIPHER_SPEC, CLIENT_HELLO,
                        CONTENT_TYPES, EXT_ALPN, EXT_COOKIE, EXT_KEY_SHARE, EXT_SERVER_NAME, EXT_SUPPORTED_GROUPS,
                        EXT_SUPPORTED_VERSIONS, FINISHED, HANDSHAKE, HELLO_RETRY_REQUEST, HELLO_RETRY_REQUEST_RANDOM,
                        SERVER_HELLO, alert_level_name, alert_name, cipher_suite_name, content_type_name, group_name,
                        is_tls13, null_cipher_mac_length, version_name)
from .dns import DnsMessage, parse_dns
from .pcapfile import CaptureFormatError, read_capture, reader as capture_reader  # noqa: F401 (re-exported)
from .records import (Hello, alpn_protocols, key_shares, named_groups, parse_hello, server_name, split_handshake,
                      supported_versions, walk_records)
from .tcp import Assembled, Direction

C2S, S2C = "c2s", "s2c"


# -- records ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Packet:
    """One IPv4 TCP or UDP frame of the capture, as tshark numbers and shows it."""

    frame: int                  # 1-based number of the frame in the file (tshark's frame.number)
    time: float                 # seconds since the file's first frame (frame.time_relative)
    src_mac: str                # "02:42:0a:4d:00:0a"
    dst_mac: str
    src: str                    # IPv4 addresses
    dst: str
    proto: str                  # "tcp" or "udp"
    sport: int
    dport: int
    flags: int                  # TCP flags (tcp.flags); 0 for UDP
    seq: int                    # TCP sequence number, absolute (tcp.seq_raw); 0 for UDP
    length: int                 # bytes of the frame in the file (frame.cap_len)
    payload: bytes = field(repr=False, compare=False)      # what TCP or UDP carried

    @property
    def payload_len(self) -> int:
        """tcp.len or udp.length minus its 8-byte header."""
        return len(self.payload)

    def to_dict(self) -> dict[str, object]:
        return {"frame": self.frame, "time": round(self.time, 6), "src_mac": self.src_mac, "dst_mac": self.dst_mac,
                "src": self.src, "dst": self.dst, "proto": self.proto, "sport": self.sport, "dport": self.dport,
                "flags": self.flags, "seq": self.seq, "payload_len": self.payload_len, "length": self.length}


@dataclass
class Flow:
    """One TCP connection or UDP conversation, oriented client -> server."""

    proto: str
    client: str
    client_port: int
    server: str
    server_port: int
    first_seen: float
    last_seen: float
    packets: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})
    payload_bytes: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})
    wire_bytes: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})
    gaps: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})

    @property
    def label(self) -> str:
        return f"{self.client}:{self.client_port} → {self.server}:{self.server_port} {self.proto}"

    def to_dict(self) -> dict[str, object]:
        return {"proto": self.proto, "client": self.client, "client_port": self.client_port,
                "server": self.server, "server_port": self.server_port,
                "first_seen": round(self.first_seen, 6), "last_seen": round(self.last_seen, 6),
                "packets": dict(self.packets), "payload_bytes": dict(self.payload_bytes),
                "wire_bytes": dict(self.wire_bytes), "gaps": dict(self.gaps)}


@dataclass(frozen=True)
class TlsRecord:
    direction: str
    time: float
    content_type: int
    version: int
    length: int
    offset: int                                   # where the header starts in the direction's stream
    frame: int                                    # the frame that completed it: where tshark shows the record
    fragment: bytes = field(repr=False, compare=False)

    @property
    def type_name(self) -> str:
        return content_type_name(self.content_type)

    @property
    def header(self) -> bytes:
        return struct.pack("!BHH", self.content_type, self.version, self.length)

    def to_dict(self) -> dict[str, object]:
        return {"direction": self.direction, "time": round(self.time, 6), "content_type": self.content_type,
                "type": self.type_name, "version": f"0x{self.version:04x}", "length": self.length,
                "offset": self.offset}


@dataclass(frozen=True)
class ClientHello:
    legacy_version: int
    random: bytes
    sni: str | None
    alpn: tuple[str, ...]
    supported_versions: tuple[int, ...]    # TLS 1.3 clients list the versions they offer here
    cipher_suites: tuple[str, ...]
    key_share_groups: tuple[str, ...]
    supported_groups: tuple[str, ...]
    compression_methods: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        return {"legacy_version": f"0x{self.legacy_version:04x}", "random": self.random.hex(), "sni": self.sni,
                "alpn": list(self.alpn), "supported_versions": [version_name(v) for v in self.supported_versions],
                "cipher_suites": list(self.cipher_suites), "key_share_groups": list(self.key_share_groups),
                "supported_groups": list(self.supported_groups),
                "compression_methods": list(self.compression_methods)}


@dataclass(frozen=True)
class ServerHello:
    legacy_version: int
    random: bytes
    cipher_suite: int
    cipher_name: str
    version: int                 # negotiated: supported_versions if present (TLS 1.3), else legacy_version
    compression_method: int | None    # None in a TLS 1.3 draft <= 21 ServerHello, which has no such field
    group: int | None = None     # the key_share it answered with (TLS 1.3, RFC 8446 4.2.8), None without one

    def to_dict(self) -> dict[str, object]:
        return {"legacy_version": f"0x{self.legacy_version:04x}", "random": self.random.hex(),
                "cipher_suite": f"0x{self.cipher_suite:04x}", "cipher": self.cipher_name,
                "version": version_name(self.version), "compression_method": self.compression_method,
                "key_share_group": None if self.group is None else group_name(self.group)}


@dataclass(frozen=True)
class HelloRetryRequest:
    """The server's request for a second ClientHello (RFC 8446 4.1.4): a ServerHello whose random is
    HELLO_RETRY_REQUEST_RANDOM (4.1.3), or, in TLS 1.3 drafts up to 21, a message of its own (type 6)."""

    version: int                 # supported_versions (RFC 8446 4.2.1), or a draft's version field
    cipher_suite: int | None     # None in drafts before 19, whose HelloRetryRequest named no suite
    cipher_name: str             # "" when it named none
    group: int | None            # the group it asks a key share in (key_share, 4.2.8); None: it asks for none
    cookie: bool                 # it sent a cookie for the client to echo (4.2.2)

    def to_dict(self) -> dict[str, object]:
        return {"version": version_name(self.version),
                "cipher_suite": None if self.cipher_suite is None else f"0x{self.cipher_suite:04x}",
                "cipher": self.cipher_name or None,
                "selected_group": None if self.group is None else group_name(self.group), "cookie": self.cookie}


@dataclass(frozen=True)
class Certificate:
    """One certificate of a Certificate message, as far as it can be read.

    cryptography reads it; what cryptography refuses (a DER default encoded
    explicitly, a BER length, an unknown version) is read by a minimal walk of
    its DER (labctl.tls.der), and what that cannot read either is still listed,
    by its size and SHA-256, with empty fields.
    """

    subject: str                 # RFC 4514, as cryptography writes it ("CN=www.example.com,O=..."); "" if unread
    issuer: str
    sans: tuple[str, ...]        # subjectAltName dNSName entries
    not_before: str              # ISO 8601, UTC; "" if unread
    not_after: str
    serial: str                  # hex of the serialNumber INTEGER's octets, as tshark shows x509af.serialNumber
    length: int = 0              # bytes of DER (tls.handshake.certificate_length)
    sha256: str = ""             # SHA-256 of the DER, hex: the certificate's fingerprint
    refused: str = ""            # why cryptography would not read it ("" if it did), one line
    readable: bool = True        # False: not even the DER walk could read it; only length and sha256 are known

    def to_dict(self) -> dict[str, object]:
        return {"subject": self.subject, "issuer": self.issuer, "sans": list(self.sans),
                "not_before": self.not_before, "not_after": self.not_after, "serial": self.serial,
                "length": self.length, "sha256": self.sha256, "refused_by_cryptography": self.refused or None,
                "readable": self.readable}


@dataclass(frozen=True)
class Alert:
    direction: str
    time: float
    level: str
    description: str
    encrypted: bool

    def to_dict(self) -> dict[str, object]:
        return {"direction": self.direction, "time": round(self.time, 6), "level": self.level,
                "description": self.description, "encrypted": self.encrypted}


@dataclass(frozen=True)
class Renegotiation:
    """A second handshake on a TLS <= 1.2 connection (RFC 5246 7.4.1.1-7.4.1.2, RFC 5746), run under
    the first one's keys: an observer sees that it happened, when and who began it, not its messages."""

    direction: str               # who began it: C2S (a ClientHello) or S2C (a HelloRequest)
    time: float
    frame: int                   # the frame of its first record
    handshake_records: dict[str, int]   # its handshake records, per direction
    completed: bool              # both sides changed keys again (a second ChangeCipherSpec each way)

    def to_dict(self) -> dict[str, object]:
        return {"started_by": self.direction, "time": round(self.time, 6), "frame": self.frame,
                "handshake_records": dict(self.handshake_records), "completed": self.completed}


# How each record crossed the wire (TlsConnection.protection): in clear, encrypted, or under a NULL
# cipher (its content in clear, followed by a MAC: RFC 5246 6.2.3.1).
CLEAR, ENCRYPTED, NULL_CIPHER = "clear", "encrypted", "NULL cipher"


@dataclass
class TlsConnection:
    flow: Flow
    records: list[TlsRecord]
    client_hello: ClientHello | None = None      # after a HelloRetryRequest, the second ClientHello
    server_hello: ServerHello | None = None      # never a HelloRetryRequest
    certificates: list[Certificate] = field(default_factory=list)    # the server's, sent in clear (TLS <= 1.2)
    alerts: list[Alert] = field(default_factory=list)
    hello_retry_request: HelloRetryRequest | None = None
    first_client_hello: ClientHello | None = None    # the ClientHello a HelloRetryRequest answered
    certificate_requested: bool = False          # the server sent a CertificateRequest in clear (TLS <= 1.2)
    client_certificates: list[Certificate] | None = None    # the client's, in clear; None: it sent no Certificate

    @property
    def version(self) -> int | None:
        """The negotiated version (TLS13, TLS12, a TLS 1.3 draft's code...), None without a ServerHello."""
        return self.server_hello.version if self.server_hello else None

    @property
    def certificates_encrypted(self) -> bool:
        """TLS 1.3 (and its drafts) sends every Certificate after the ServerHello, encrypted (RFC 8446 4.4.2)."""
        return self.version is not None and is_tls13(self.version)

    @property
    def null_cipher_mac(self) -> int | None:
        """The MAC length, in bytes, when the chosen suite encrypts nothing (TLS_*_WITH_NULL_*); else None."""
        return _null_mac(self.records)

    def protection(self) -> list[str]:
        """How each record of ``records`` (same order) crossed: CLEAR, ENCRYPTED or NULL_CIPHER.

        TLS 1.3 and its drafts protect every record after the ServerHello and
        send it as application_data (RFC 8446 section 5.2), so any other type is
        clear (its ChangeCipherSpec is a compatibility record, Appendix D.4). In
        TLS <= 1.2 every record after its sender's ChangeCipherSpec is protected
        (RFC 5246 section 7.1), as is any application_data: encrypted, or under a
        NULL suite only MAC'd. Which rules apply is read from the server's first
        hello (ServerHello or HelloRetryRequest); without one, TLS 1.2's.
        """
        return [how for _, how, _ in self._protections()]

    def _protections(self) -> Iterator[tuple[TlsRecord, str, bytes | None]]:
        """Each record, in order, with how it crossed (see protection) and what can be read of it (see
        readable_records); a generator, so that a reader of the handshake stops where it ends."""
        version, suite = _negotiated(self.records)
        tls13 = version is not None and is_tls13(version)
        mac = None if tls13 or suite is None else null_cipher_mac_length(suite)
        changed = {C2S: False, S2C: False}
        for r in self.records:
            if tls13:
                how = ENCRYPTED if r.content_type == APPLICATION_DATA else CLEAR
            elif changed[r.direction] or r.content_type == APPLICATION_DATA:
                how = ENCRYPTED if mac is None else NULL_CIPHER
            else:
                how = CLEAR
            changed[r.direction] = changed[r.direction] or r.content_type == CHANGE_CIPHER_SPEC
            yield r, how, (r.fragment if how == CLEAR else None if mac is None or how == ENCRYPTED
                           else r.fragment[:max(0, len(r.fragment) - mac)])

    def encrypted_records(self) -> list[bool]:
        """Whether each record of ``records`` (same order) crossed encrypted (see protection): never under a
        NULL cipher; in TLS 1.3 every application_data record; in TLS 1.2 every record after its sender's
        ChangeCipherSpec (a renegotiation's ChangeCipherSpec too)."""
        return [p == ENCRYPTED for p in self.protection()]

    def readable_records(self) -> list[bytes | None]:
        """What an observer reads of each record of ``records`` (same order): the fragment of a record sent in
        clear; under a NULL cipher the content, without the MAC that follows it (RFC 5246 6.2.3.1); None for an
        encrypted record."""
        return [data for _, _, data in self._protections()]

    def clear_application_data(self, direction: str) -> bytes:
        """The application data DIRECTION sent that crossed readable (a NULL cipher's), joined; b"" if none did."""
        return b"".join(data for r, _, data in self._protections()
                        if data is not None and r.direction == direction and r.content_type == APPLICATION_DATA)

    def handshake_messages(self, direction: str) -> list[bytes]:
        """This side's first handshake's messages that crossed readable, whole (type, u24 length, body), in order.

        They end where the side's encryption starts: its first encrypted record
        (after its ChangeCipherSpec in TLS <= 1.2; TLS 1.3's compatibility
        ChangeCipherSpec is passed over, so a second ClientHello after a
        HelloRetryRequest is here). Under a NULL cipher they end with the side's
        Finished: a renegotiation's messages are not taken for the first's.
        """
        messages: list[bytes] = []
        buffer = b""
        for record, how, data in self._protections():
            if record.direction != direction:
                continue
            if data is None:
                break
            if record.content_type != HANDSHAKE:
                continue
            whole, buffer = split_handshake(buffer + data)
            for message in whole:
                messages.append(message)
                if how == NULL_CIPHER and message[0] == FINISHED:
                    return messages
        return messages

    def renegotiation(self) -> Renegotiation | None:
        """The second handshake of a TLS <= 1.2 connection, None if there was none.

        Each side's first protected handshake record is its Finished (RFC 5246
        7.4.9); a protected handshake record after it is a renegotiation's: a
        ClientHello from the client, a HelloRequest (or the ServerHello) from the
        server. TLS 1.3 has no renegotiation (RFC 8446 section 4).
        """
        finished = {C2S: False, S2C: False}
        changes = {C2S: 0, S2C: 0}
        later: list[TlsRecord] = []
        for record, how, _ in self._protections():
            if record.content_type == CHANGE_CIPHER_SPEC:
                changes[record.direction] += 1
            if how == CLEAR or record.content_type != HANDSHAKE:
                continue        # TLS 1.3's protected records all say application_data: none is counted
            if finished[record.direction]:
                later.append(record)
            finished[record.direction] = True
        if not later:
            return None
        return Renegotiation(later[0].direction, later[0].time, later[0].frame,
                             {d: sum(r.direction == d for r in later) for d in (C2S, S2C)},
                             min(changes.values()) >= 2)

    def app_data_bytes(self, direction: str) -> int:
        return sum(r.length for r in self.records if r.direction == direction and r.content_type == APPLICATION_DATA)

    def to_dict(self) -> dict[str, object]:
        renegotiation = self.renegotiation()
        null = self.null_cipher_mac is not None
        return {"flow": self.flow.label, "version": None if self.version is None else version_name(self.version),
                "client_hello": self.client_hello.to_dict() if self.client_hello else None,
                "hello_retry_request": self.hello_retry_request.to_dict() if self.hello_retry_request else None,
                "first_client_hello": self.first_client_hello.to_dict() if self.first_client_hello else None,
                "server_hello": self.server_hello.to_dict() if self.server_hello else None,
                "certificates_in_clear": [c.to_dict() for c in self.certificates],
                "certificates_encrypted": self.certificates_encrypted,
                "certificate_requested": self.certificate_requested,
                "client_certificates_in_clear": (None if self.client_certificates is None
                                                 else [c.to_dict() for c in self.client_certificates]),
                "alerts": [a.to_dict() for a in self.alerts],
                "null_cipher": null,
                # Under a NULL cipher the application data crossed readable; each byte as one character (latin-1).
                "clear_application_data": ({d: self.clear_application_data(d).decode("latin-1") for d in (C2S, S2C)}
                                           if null else None),
                "renegotiation": renegotiation.to_dict() if renegotiation else None,
                "application_data_bytes": {C2S: self.app_data_bytes(C2S), S2C: self.app_data_bytes(S2C)},
                "records": [r.to_dict() | {"protection": p} for r, p in zip(self.records, self.protection())]}


@dataclass
class Observation:
    """Everything one capture shows, as a passive observer on the wire sees it."""

    frames: int                 # every frame in the file, IPv4 or not
    wire_bytes: int
    duration: float
    flows: list[Flow]
    dns: list[DnsMessage]
    tls: list[TlsConnection]
    packets: list[Packet] = field(repr=False, default_factory=list)                  # each IPv4 TCP/UDP frame, once
    streams: dict[tuple[int, str], bytes] = field(repr=False, default_factory=dict)   # (flow index, dir)

    @property
    def payloads(self) -> list[bytes]:
        """Every packet's payload that is not empty, in capture order."""
        return [p.payload for p in self.packets if p.payload]

    def find(self, needle: bytes) -> list[str]:
        """Where needle appears: in any single packet's payload, or across a reassembled stream."""
        if not needle:
            return []
        places = [f"packet payload #{i + 1}" for i, p in enumerate(self.payloads) if needle in p]
        for (index, direction), data in self.streams.items():
            if needle in data:
                places.append(f"stream {self.flows[index].label} {direction}")
        return places

    def stream(self, flow: Flow, direction: str) -> bytes:
        return self.streams.get((self.flows.index(flow), direction), b"")

    def to_dict(self) -> dict[str, object]:
        return {"packets": self.frames, "wire_bytes": self.wire_bytes, "duration": round(self.duration, 6),
                "flows": [f.to_dict() for f in self.flows], "dns": [d.to_dict() for d in self.dns],
                "tls": [t.to_dict() for t in self.tls]}


# -- reading ------------------------------------------------------------------------

def analyze_file(path: PathLike) -> Observation:
    """Read and dissect the capture at PATH (see read_capture for what is refused)."""
    return analyze(read_capture(path), name=shown(path))


_FlowKey = tuple[str, tuple[str, int], tuple[str, int]]      # proto, then both ends in sorted order


def analyze(data: bytes, name: str = "the capture") -> Observation:
    """Dissect a whole capture."""
    reader = capture_reader(data, name)
    flows: dict[_FlowKey, Flow] = {}
    order: list[_FlowKey] = []
    tcp_dirs: dict[_FlowKey, dict[str, Direction]] = {}
    dns: list[DnsMessage] = []
    packets: list[Packet] = []
    count = total = 0
    start = last = None
    try:
        for ts, frame in reader:
            count += 1
            total += len(frame)
            start = ts if start is None else start
            last = ts
            t = float(ts - start)
            try:
                eth = dpkt.ethernet.Ethernet(frame)
            except (dpkt.UnpackError, struct.error):
                continue
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP):
                continue
            seg = ip.data
            if isinstance(seg, dpkt.tcp.TCP):
                proto = "tcp"
            elif isinstance(seg, dpkt.udp.UDP):
                proto = "udp"
            else:
                continue
            src, dst = socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst)
            sport, dport = seg.sport, seg.dport
            payload = bytes(seg.data)
            tcp = proto == "tcp"
            flags = seg.flags if tcp else 0
            packets.append(Packet(count, t, eth.src.hex(":"), eth.dst.hex(":"), src, dst, proto, sport, dport,
                                  flags, seg.seq if tcp else 0, len(frame), payload))
            a, b = (src, sport), (dst, dport)
            key = (proto, a, b) if a <= b else (proto, b, a)
            flow = flows.get(key)
            if flow is None:
                client, server = _orient(proto, a, b, flags)
                flow = Flow(proto, client[0], client[1], server[0], server[1], t, t)
                flows[key] = flow
                order.append(key)
            flow.last_seen = t
            direction = C2S if a == (flow.client, flow.client_port) else S2C
            flow.packets[direction] += 1
            flow.payload_bytes[direction] += len(payload)
            flow.wire_bytes[direction] += len(frame)
            if tcp:
                dirs = tcp_dirs.setdefault(key, {C2S: Direction(), S2C: Direction()})
                half = dirs[direction]
                if flags & dpkt.tcp.TH_SYN:
                    half.isn = (seg.seq + 1) % (1 << 32)
                if payload:
                    half.add(seg.seq, payload, t, count)
            elif 53 in (sport, dport) and payload:
                message = parse_dns(payload, t, src, dst)
                if message is not None:
                    dns.append(message)
    except (dpkt.NeedData, dpkt.UnpackError, struct.error, ValueError) as exc:
        raise CaptureFormatError(f"{name} is cut short or damaged after {count} packets ({exc or 'truncated'})") from None

    flow_list = [flows[k] for k in order]
    streams: dict[tuple[int, str], bytes] = {}
    tls: list[TlsConnection] = []
    for index, key in enumerate(order):
        if key not in tcp_dirs:
            continue
        flow = flows[key]
        per_dir = {}
        for direction, half in tcp_dirs[key].items():
            assembled = half.assemble()
            flow.gaps[direction] = assembled.gaps
            streams[(index, direction)] = assembled.data
            per_dir[direction] = assembled
        connection = _tls(flow, per_dir)
        if connection is not None:
            tls.append(connection)
    duration = float(last - start) if start is not None and last is not None else 0.0
    return Observation(count, total, duration, flow_list, dns, tls, packets, streams)


def _orient(proto: str, a: tuple[str, int], b: tuple[str, int], flags: int) -> tuple[tuple[str, int], tuple[str, int]]:
    """Which end is the client: the SYN sender; else the one talking to a well-known port."""
    src = a
    if proto == "tcp" and flags & dpkt.tcp.TH_SYN:
        return (a, b) if not flags & dpkt.tcp.TH_ACK else (b, a)
    other = b
    if src[1] < 1024 <= other[1]:
        return other, src
    return src, other


# -- TLS ------------------------------------------------------------------------------

def _records(stream: Assembled, direction: str) -> list[TlsRecord]:
    """The direction's records (until the bytes stop looking like TLS).

    Each is dated by the segment that carried its header, and numbered by the
    frame that completed it: the one with its last byte, or a later one if an
    earlier segment of it arrived late (where tshark shows a reassembled record).
    """
    records = []
    offsets, frames = stream.offsets, stream.frames
    for header in walk_records(stream.data):
        first = bisect.bisect_right(offsets, header.offset) - 1
        last = bisect.bisect_right(offsets, header.end - 1) - 1
        records.append(TlsRecord(direction, stream.times[max(first, 0)], header.content_type, header.version,
                                 header.length, header.offset, max(frames[max(first, 0):last + 1]),
                                 stream.data[header.start:header.end]))
    return records


_NOTHING = Assembled(b"", [], [], [], 0)


def _tls(flow: Flow, per_dir: dict[str, Assembled]) -> TlsConnection | None:
    c2s = per_dir.get(C2S, _NOTHING)
    s2c = per_dir.get(S2C, _NOTHING)
    if len(c2s.data) < 6 or c2s.data[1] != 3 or c2s.data[0] not in CONTENT_TYPES:
        return None
    client_records = _records(c2s, C2S)
    if c2s.data[0] != HANDSHAKE and sum(5 + r.length for r in client_records) != len(c2s.data):
        # Not opened by a ClientHello: TLS only if it was recorded from the middle
        # of a connection, i.e. the client's whole stream is TLS records.
        return None
    records = client_records + _records(s2c, S2C)
    records.sort(key=lambda r: (r.time, r.direction != C2S, r.offset))
    connection = TlsConnection(flow, records)
    for direction in (C2S, S2C):
        _read_handshake(connection, [r for r in records if r.direction == direction])
    return connection


def _negotiated(records: list[TlsRecord]) -> tuple[int | None, int | None]:
    """(version, cipher suite) as the server's first hello says, read from its records before any other type
    (the ServerHello, or a HelloRetryRequest, always opens its side); (None, None) without one."""
    buffer, found = b"", None
    for record in records:
        if record.direction != S2C:
            continue
        if record.content_type != HANDSHAKE:
            break
        whole, buffer = split_handshake(buffer + record.fragment)
        found = next((m for m in reversed(whole) if m[0] in (SERVER_HELLO, HELLO_RETRY_REQUEST)), found)
        if found is not None:
            break
    if found is None:
        return None, None
    try:
        hello = parse_hello(found)
    except (ValueError, IndexError):
        return None, None
    chosen = supported_versions(hello.extensions.get(EXT_SUPPORTED_VERSIONS, b""), SERVER_HELLO)
    return (chosen[0] if chosen else hello.legacy_version), (hello.cipher_suites[0] if hello.cipher_suites else None)


def _null_mac(records: list[TlsRecord]) -> int | None:
    version, suite = _negotiated(records)
    if version is None or suite is None or is_tls13(version):
        return None
    return null_cipher_mac_length(suite)


def _read_handshake(connection: TlsConnection, records: list[TlsRecord]) -> None:
    """Parse one direction's handshake messages that crossed readable, and note its alerts."""
    direction = records[0].direction if records else C2S
    for message in connection.handshake_messages(direction):
        _handshake_message(connection, message, direction)
    for record, how, data in connection._protections():
        if record.direction != direction or record.content_type != ALERT:
            continue
        # An alert is 2 bytes, level then description (RFC 8446 section 6); a clear record may hold several.
        if how == ENCRYPTED or not data or len(data) % 2:
            connection.alerts.append(Alert(record.direction, record.time, "?", "(encrypted)", True))
            continue
        for i in range(0, len(data), 2):
            connection.alerts.append(Alert(record.direction, record.time, alert_level_name(data[i]),
                                           alert_name(data[i + 1]), False))


def _handshake_message(connection: TlsConnection, message: bytes, direction: str) -> None:
    """Take one handshake message in: a hello, a certificate chain, a certificate request."""
    kind = message[0]
    try:
        if kind == CLIENT_HELLO:
            hello = _client_hello(parse_hello(message))
            if connection.client_hello is not None and connection.first_client_hello is None:
                connection.first_client_hello = connection.client_hello    # answered by a HelloRetryRequest
            connection.client_hello = hello
        elif kind == SERVER_HELLO or kind == HELLO_RETRY_REQUEST:
            parsed = parse_hello(message)
            if kind == HELLO_RETRY_REQUEST or parsed.random == HELLO_RETRY_REQUEST_RANDOM:
                connection.hello_retry_request = _hello_retry_request(parsed)
            else:
                connection.server_hello = _server_hello(parsed)
        elif kind == CERTIFICATE:
            chain = _certificates(message[4:])
            if direction == S2C:
                connection.certificates = chain
            else:
                connection.client_certificates = chain
        elif kind == CERTIFICATE_REQUEST and direction == S2C:
            connection.certificate_requested = True
    except (struct.error, ValueError, IndexError):
        return                          # a malformed message is just not shown


def _client_hello(hello: Hello) -> ClientHello:
    exts = hello.extensions
    sni = server_name(exts[EXT_SERVER_NAME]) if EXT_SERVER_NAME in exts else None
    alpn = alpn_protocols(exts[EXT_ALPN]) if EXT_ALPN in exts else []
    versions = supported_versions(exts[EXT_SUPPORTED_VERSIONS], CLIENT_HELLO) if EXT_SUPPORTED_VERSIONS in exts else []
    shares = [group for group, _ in key_shares(exts[EXT_KEY_SHARE], CLIENT_HELLO)] if EXT_KEY_SHARE in exts else []
    groups = named_groups(exts[EXT_SUPPORTED_GROUPS]) if EXT_SUPPORTED_GROUPS in exts else []
    return ClientHello(
        legacy_version=hello.legacy_version, random=hello.random, sni=sni, alpn=tuple(alpn),
        supported_versions=tuple(versions),
        cipher_suites=tuple(cipher_suite_name(code) for code in hello.cipher_suites),
        key_share_groups=tuple(group_name(g) for g in shares),
        supported_groups=tuple(group_name(g) for g in groups),
        compression_methods=hello.compression_methods)


def _chosen_version(hello: Hello) -> int:
    """The version a server's hello chose: supported_versions if it sent one (TLS 1.3, RFC 8446 4.2.1),
    else its version field (TLS <= 1.2, and TLS 1.3 drafts up to 21)."""
    chosen = supported_versions(hello.extensions.get(EXT_SUPPORTED_VERSIONS, b""), SERVER_HELLO)
    return chosen[0] if chosen else hello.legacy_version


def _selected_group(hello: Hello) -> int | None:
    """The group of a server's key_share (RFC 8446 4.2.8): its share's, or the one a HelloRetryRequest asks for."""
    shares = key_shares(hello.extensions[EXT_KEY_SHARE], SERVER_HELLO) if EXT_KEY_SHARE in hello.extensions else []
    return shares[0][0] if shares else None


def _server_hello(hello: Hello) -> ServerHello:
    [code] = hello.cipher_suites
    return ServerHello(hello.legacy_version, hello.random, code, cipher_suite_name(code), _chosen_version(hello),
                       hello.compression_methods[0] if hello.compression_methods else None, _selected_group(hello))


def _hello_retry_request(hello: Hello) -> HelloRetryRequest:
    code = hello.cipher_suites[0] if hello.cipher_suites else None
    return HelloRetryRequest(_chosen_version(hello), code, cipher_suite_name(code) if code is not None else "",
                             _selected_group(hello), EXT_COOKIE in hello.extensions)


def _certificates(body: bytes) -> list[Certificate]:
    """A TLS <= 1.2 Certificate message's chain (RFC 5246 7.4.2): u24 list length, then u24-prefixed DER
    certificates. Every certificate is listed, read as far as it can be (see Certificate); one cut short by
    the message's end is listed by the bytes that are there."""
    certs = []
    end = min(len(body), 3 + int.from_bytes(body[:3], "big"))
    pos = 3
    while pos + 3 <= end:
        n = int.from_bytes(body[pos:pos + 3], "big")
        certs.append(_certificate(body[pos + 3:min(end, pos + 3 + n)]))
        pos += 3 + n
    return certs


def _certificate(der: bytes) -> Certificate:
    """One certificate: read by cryptography; if it refuses, by a walk of the DER; if that fails too, its size
    and SHA-256 only."""
    digest = hashlib.sha256(der).hexdigest()
    try:
        with warnings.catch_warnings():
            # cryptography warns of what it will refuse in a later release (a serial number <= 0): read it now.
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                sans = tuple(str(v) for v in san.value.get_values_for_type(x509.DNSName))
            except x509.ExtensionNotFound:
                sans = ()
            serial = cert.serial_number
            return Certificate(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), sans,
                               cert.not_valid_before_utc.isoformat(), cert.not_valid_after_utc.isoformat(),
                               serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True).hex(),
                               len(der), digest)
    except (ValueError, x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        refused = " ".join(str(exc).split())[:160] or type(exc).__name__
    try:
        tbs = der_walk.read_certificate(der)
    except (ValueError, IndexError):
        return Certificate("", "", (), "", "", "", len(der), digest, refused, readable=False)
    return Certificate(_rfc4514(tbs.subject), _rfc4514(tbs.issuer), tbs.dns_names, tbs.not_before.isoformat(),
                       tbs.not_after.isoformat(), tbs.serial.hex(), len(der), digest, refused)


def _rfc4514(name: der_walk.Name) -> str:
    """A Name read by the DER walk, written as cryptography writes one (RFC 4514: last RDN first)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(x509.ObjectIdentifier(oid), value)
                                                              for oid, value in rdn]) for rdn in name]).rfc4514_string()
    except ValueError:
        return ",".join("+".join(f"{oid}={value}" for oid, value in rdn) for rdn in reversed(name))
