"""From a pcap to an Observation: what the wire saw, and what it gives away.

labctl.tls.pcapfile reads the capture (pcap or pcapng) forward, frame by
frame; labctl.tls.packets reads each frame's headers, from its link layer
through IPv4 or IPv6 to TCP or UDP; cryptography reads X.509 certificates.
The rest is the glue that libraries leave to the caller: TCP reassembly per direction
(TLS records cross segment boundaries, and on veth one "packet" can be 64 KB
of coalesced segments), then, with labctl.tls.records, walking the TLS record
layer over the reassembled stream and reading the handshake messages that
precede encryption.

Its parts: labctl.tls.pcapfile reads the file, labctl.tls.packets the headers,
labctl.tls.tcp reassembles, labctl.tls.dns reads DNS messages (over UDP and
TCP), labctl.tls.records the TLS record layer.

The analyzer never raises on odd traffic: a stream that does not parse as
TLS is simply not TLS, and a capture with gaps says so; what it does not
dissect (a link type, IP fragments) is counted and named, and frames the
capture cut short (snaplen) are counted per flow, their missing bytes never
filled in. It does raise CaptureFormatError for a file that is not a capture,
is damaged or is cut short.
"""

from __future__ import annotations

import bisect
import io
import struct
from collections import Counter
from dataclasses import dataclass, field

from cryptography import x509

from ..files import PathLike
from .constants import (ALERT, APPLICATION_DATA, CERTIFICATE, CHANGE_CIPHER_SPEC, CLIENT_HELLO, CONTENT_TYPES,
                        EXT_ALPN, EXT_KEY_SHARE, EXT_SERVER_NAME, EXT_SUPPORTED_GROUPS, EXT_SUPPORTED_VERSIONS,
                        HANDSHAKE, SERVER_HELLO, TLS13, alert_level_name, alert_name, cipher_suite_name,
                        content_type_name, group_name, version_name)
from .dns import DnsMessage, parse_dns, tcp_messages
from .packets import ACK, LINK_TYPE_NAMES, SYN, TCP, Segment, decode
from .pcapfile import Capture, open_capture, reader as capture_reader
from .pcapfile import CaptureFormatError as CaptureFormatError, read_capture as read_capture
from .records import (Hello, alpn_protocols, key_shares, named_groups, parse_hello, server_name, split_handshake,
                      supported_versions, walk_records)
from .tcp import Assembled, Direction

C2S, S2C = "c2s", "s2c"
REEXPORTED = (CaptureFormatError, read_capture)      # callers read files and catch their errors through here


# -- records ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Packet:
    """One TCP or UDP frame of the capture (over IPv4 or IPv6, on any link layer read), as tshark
    numbers and shows it."""

    frame: int                  # 1-based number of the frame in the file (tshark's frame.number)
    time: float                 # seconds since the file's first frame (frame.time_relative)
    src_mac: str                # "02:42:0a:4d:00:0a" (eth.src); "" on a link layer without one, and
    dst_mac: str                # the sender's for a Linux cooked capture (sll.src.eth)
    src: str                    # IPv4 or IPv6 addresses, as tshark shows them ("2001:db8::1")
    dst: str
    proto: str                  # "tcp" or "udp"
    sport: int
    dport: int
    flags: int                  # TCP flags (tcp.flags); 0 for UDP
    seq: int                    # TCP sequence number, absolute (tcp.seq_raw); 0 for UDP
    length: int                 # bytes of the frame in the file (frame.cap_len)
    payload: bytes = field(repr=False, compare=False)      # what TCP or UDP carried, as far as it was captured
    missing: int = 0            # payload bytes that crossed the wire and the capture does not hold (snaplen)
    wire_length: int = 0        # bytes of the frame on the wire (frame.len): length + what was not captured

    @property
    def payload_len(self) -> int:
        """tcp.len, or udp.length minus its 8-byte header: what crossed the wire, captured or not."""
        return len(self.payload) + self.missing

    @property
    def truncated(self) -> bool:
        """Whether the capture holds less of this frame than crossed the wire (a snaplen cut it)."""
        return self.wire_length > self.length or self.missing > 0

    def to_dict(self) -> dict[str, object]:
        return {"frame": self.frame, "time": round(self.time, 6), "src_mac": self.src_mac, "dst_mac": self.dst_mac,
                "src": self.src, "dst": self.dst, "proto": self.proto, "sport": self.sport, "dport": self.dport,
                "flags": self.flags, "seq": self.seq, "payload_len": self.payload_len, "length": self.length,
                "wire_length": self.wire_length, "missing": self.missing}


def endpoint(address: str, port: int) -> str:
    """'10.0.0.1:443', '[2001:db8::1]:443': an address and port as one token (RFC 5952 section 6)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


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
    wire_bytes: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})     # frame.len, summed
    gaps: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})
    # Frames the capture cut short (snaplen): captured shorter than they crossed the wire.
    truncated: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})

    @property
    def label(self) -> str:
        return f"{endpoint(self.client, self.client_port)} → {endpoint(self.server, self.server_port)} {self.proto}"

    def to_dict(self) -> dict[str, object]:
        return {"proto": self.proto, "client": self.client, "client_port": self.client_port,
                "server": self.server, "server_port": self.server_port,
                "first_seen": round(self.first_seen, 6), "last_seen": round(self.last_seen, 6),
                "packets": dict(self.packets), "payload_bytes": dict(self.payload_bytes),
                "wire_bytes": dict(self.wire_bytes), "gaps": dict(self.gaps), "truncated": dict(self.truncated)}


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
    compression_method: int

    def to_dict(self) -> dict[str, object]:
        return {"legacy_version": f"0x{self.legacy_version:04x}", "random": self.random.hex(),
                "cipher_suite": f"0x{self.cipher_suite:04x}", "cipher": self.cipher_name,
                "version": version_name(self.version), "compression_method": self.compression_method}


@dataclass(frozen=True)
class Certificate:
    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: str
    not_after: str
    serial: str

    def to_dict(self) -> dict[str, object]:
        return {"subject": self.subject, "issuer": self.issuer, "sans": list(self.sans),
                "not_before": self.not_before, "not_after": self.not_after, "serial": self.serial}


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


@dataclass
class TlsConnection:
    flow: Flow
    records: list[TlsRecord]
    client_hello: ClientHello | None = None
    server_hello: ServerHello | None = None
    certificates: list[Certificate] = field(default_factory=list)    # sent in clear (TLS <= 1.2)
    alerts: list[Alert] = field(default_factory=list)

    @property
    def version(self) -> int | None:
        """The negotiated version (TLS13, TLS12, ...), None without a ServerHello."""
        return self.server_hello.version if self.server_hello else None

    def handshake_messages(self, direction: str) -> list[bytes]:
        """This side's handshake messages sent in clear, whole (type, u24 length, body), in order.

        They end where the side's encryption starts: at its ChangeCipherSpec
        (TLS 1.2, and TLS 1.3's compatibility record) or its first encrypted record.
        """
        messages, buffer = [], b""
        for record in self.records:
            if record.direction != direction or record.content_type == ALERT:
                continue
            if record.content_type != HANDSHAKE:
                break
            whole, buffer = split_handshake(buffer + record.fragment)
            messages += whole
        return messages

    def encrypted_records(self) -> list[bool]:
        """Whether each record of ``records`` (same order) crossed encrypted: every application_data
        record (TLS 1.3 sends all protected records under that type, RFC 8446 section 5.2) and, in
        TLS 1.2, every record after its sender's ChangeCipherSpec (RFC 5246 section 7.1)."""
        after = {C2S: False, S2C: False}
        out = []
        for r in self.records:
            out.append(r.content_type == APPLICATION_DATA or (after[r.direction] and r.content_type != CHANGE_CIPHER_SPEC))
            after[r.direction] = after[r.direction] or r.content_type == CHANGE_CIPHER_SPEC
        return out

    def app_data_bytes(self, direction: str) -> int:
        return sum(r.length for r in self.records if r.direction == direction and r.content_type == APPLICATION_DATA)

    def to_dict(self) -> dict[str, object]:
        return {"flow": self.flow.label, "version": None if self.version is None else version_name(self.version),
                "client_hello": self.client_hello.to_dict() if self.client_hello else None,
                "server_hello": self.server_hello.to_dict() if self.server_hello else None,
                "certificates_in_clear": [c.to_dict() for c in self.certificates],
                "alerts": [a.to_dict() for a in self.alerts],
                "application_data_bytes": {C2S: self.app_data_bytes(C2S), S2C: self.app_data_bytes(S2C)},
                "records": [r.to_dict() for r in self.records]}


@dataclass
class Observation:
    """Everything one capture shows, as a passive observer on the wire sees it."""

    frames: int                 # every frame in the file, IP or not
    wire_bytes: int             # frame.len, summed: what crossed the wire, captured or not
    duration: float
    flows: list[Flow]
    dns: list[DnsMessage]
    tls: list[TlsConnection]
    packets: list[Packet] = field(repr=False, default_factory=list)                  # each TCP/UDP frame, once
    streams: dict[tuple[int, str], bytes] = field(repr=False, default_factory=dict)   # (flow index, dir)
    truncated: int = 0          # frames captured shorter than they crossed the wire (a snaplen cut them)
    # What may carry TCP or UDP and was not dissected: "of link type 147 (USER0)" -> packets (packets.decode)
    not_dissected: dict[str, int] = field(default_factory=dict)
    link_types: dict[int, int] = field(default_factory=dict)       # LINKTYPE_ value -> frames
    # Decryption Secrets Blocks of a pcapng: (secrets type, bytes); 0x544c534b is an NSS key log.
    secrets: list[tuple[int, bytes]] = field(repr=False, default_factory=list)

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
                "link_types": [{"link_type": linktype, "name": LINK_TYPE_NAMES.get(linktype), "packets": n}
                               for linktype, n in self.link_types.items()],
                "truncated_frames": self.truncated,
                "not_dissected": [{"packets": n, "what": what} for what, n in self.not_dissected.items()],
                "flows": [f.to_dict() for f in self.flows], "dns": [d.to_dict() for d in self.dns],
                "tls": [t.to_dict() for t in self.tls]}


# -- reading ------------------------------------------------------------------------

def analyze_file(path: PathLike) -> Observation:
    """Read and dissect the capture at PATH, forward from the open file (see open_capture for what is
    refused): memory holds what is kept of it, never the file whole."""
    with open_capture(path) as capture:
        return dissect(capture)


def analyze(data: bytes, name: str = "the capture") -> Observation:
    """Dissect a whole capture held in memory (its frames are read in place)."""
    return dissect(capture_reader(data, name))


def analyze_stream(handle: io.RawIOBase | io.BufferedIOBase, name: str = "the capture") -> Observation:
    """Dissect a capture read forward from HANDLE (a binary file object, left open)."""
    return dissect(Capture(handle, name))


_FlowKey = tuple[str, tuple[str, int], tuple[str, int]]      # proto, then both ends in sorted order


def dissect(capture: Capture) -> Observation:
    """Every frame of CAPTURE, in one pass: flows, TCP streams, DNS messages, then TLS.

    The loop is the analyzer's hot path: one decode() per frame (headers read in
    place), and one copy of each payload, which is kept (Packet.payload, and the
    TCP reassembly shares it).
    """
    flows: dict[_FlowKey, Flow] = {}
    tcp_dirs: dict[_FlowKey, dict[str, Direction]] = {}
    dns: list[DnsMessage] = []
    packets: list[Packet] = []
    not_dissected: Counter[str] = Counter()
    link_types: Counter[int] = Counter()
    count = total = truncated = 0
    start: float | None = None
    last = 0.0
    for ts, linktype, frame, wire_length in capture:
        count += 1
        total += wire_length
        link_types[linktype] += 1
        if start is None:
            start = ts
        last = ts
        cut = wire_length > len(frame)
        segment = decode(linktype, frame)
        if not isinstance(segment, Segment):
            truncated += cut
            if segment is not None:
                not_dissected[segment] += 1
            continue
        truncated += cut or segment.missing > 0
        t = ts - start
        payload = bytes(frame[segment.start:segment.end])
        src, dst, sport, dport, flags = segment.src, segment.dst, segment.sport, segment.dport, segment.flags
        tcp = segment.proto == TCP
        proto = "tcp" if tcp else "udp"
        packets.append(Packet(count, t, segment.src_mac, segment.dst_mac, src, dst, proto, sport, dport, flags,
                              segment.seq, len(frame), payload, segment.missing, wire_length))
        a, b = (src, sport), (dst, dport)
        key = (proto, a, b) if a <= b else (proto, b, a)
        flow = flows.get(key)
        if flow is None:
            client, server = _orient(proto, a, b, flags)
            flow = flows[key] = Flow(proto, client[0], client[1], server[0], server[1], t, t)
        flow.last_seen = t
        direction = C2S if a == (flow.client, flow.client_port) else S2C
        flow.packets[direction] += 1
        flow.payload_bytes[direction] += len(payload) + segment.missing
        flow.wire_bytes[direction] += wire_length
        if cut or segment.missing:
            flow.truncated[direction] += 1
        if tcp:
            dirs = tcp_dirs.get(key)
            if dirs is None:
                dirs = tcp_dirs[key] = {C2S: Direction(), S2C: Direction()}
            half = dirs[direction]
            if flags & SYN:
                half.isn = (segment.seq + 1) % (1 << 32)
            if payload:
                # Only what was captured: the rest of a cut segment is a hole the reassembly keeps.
                half.add(segment.seq, payload, t, count)
        elif (sport == 53 or dport == 53) and payload and not segment.missing:
            message = parse_dns(payload, t, src, dst, count)
            if message is not None:
                dns.append(message)

    flow_list = list(flows.values())
    streams: dict[tuple[int, str], bytes] = {}
    tls: list[TlsConnection] = []
    for index, (key, flow) in enumerate(flows.items()):
        if key not in tcp_dirs:
            continue
        per_dir = {}
        for direction, half in tcp_dirs[key].items():
            assembled = half.assemble()
            flow.gaps[direction] = assembled.gaps
            streams[(index, direction)] = assembled.data
            per_dir[direction] = assembled
        if 53 in (flow.client_port, flow.server_port):
            dns += _dns_over_tcp(flow, per_dir)
        connection = _tls(flow, per_dir)
        if connection is not None:
            tls.append(connection)
    dns.sort(key=lambda m: m.frame)
    duration = last - start if start is not None else 0.0
    return Observation(count, total, duration, flow_list, dns, tls, packets, streams, truncated,
                       dict(not_dissected), dict(link_types), list(capture.secrets))


def _dns_over_tcp(flow: Flow, per_dir: dict[str, Assembled]) -> list[DnsMessage]:
    """The DNS messages of a TCP connection to or from port 53, each dated and numbered by the
    frame that carried its last byte (where tshark shows it)."""
    out = []
    for direction, stream in per_dir.items():
        src, dst = (flow.client, flow.server) if direction == C2S else (flow.server, flow.client)
        for begin, end in tcp_messages(stream.data):
            first = bisect.bisect_right(stream.offsets, begin) - 1
            last = bisect.bisect_right(stream.offsets, end - 1) - 1
            message = parse_dns(stream.data[begin:end], stream.times[last], src, dst,
                                max(stream.frames[max(first, 0):last + 1]), "tcp")
            if message is not None:
                out.append(message)
    return out


def _orient(proto: str, a: tuple[str, int], b: tuple[str, int], flags: int) -> tuple[tuple[str, int], tuple[str, int]]:
    """Which end is the client: the SYN sender; else the one talking to a well-known port."""
    src = a
    if proto == "tcp" and flags & SYN:
        return (a, b) if not flags & ACK else (b, a)
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


def _read_handshake(connection: TlsConnection, records: list[TlsRecord]) -> None:
    """Parse one direction's clear handshake messages, and note its alerts."""
    direction = records[0].direction if records else C2S
    for message in connection.handshake_messages(direction):
        _handshake_message(connection, message)
    encrypted = False
    for record in records:
        if record.content_type == CHANGE_CIPHER_SPEC:
            encrypted = True            # TLS <= 1.2: everything after ChangeCipherSpec is encrypted
        elif record.content_type == ALERT:
            clear = not encrypted and len(record.fragment) == 2
            level, desc = (record.fragment[0], record.fragment[1]) if clear else (0, -1)
            connection.alerts.append(Alert(record.direction, record.time,
                                           alert_level_name(level) if clear else "?",
                                           alert_name(desc) if clear else "(encrypted)",
                                           not clear))


def _handshake_message(connection: TlsConnection, message: bytes) -> None:
    kind = message[0]
    try:
        if kind == CLIENT_HELLO:
            connection.client_hello = _client_hello(parse_hello(message))
        elif kind == SERVER_HELLO:
            connection.server_hello = _server_hello(parse_hello(message))
        elif kind == CERTIFICATE and connection.version != TLS13:
            connection.certificates = _certificates(message[4:])
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


def _server_hello(hello: Hello) -> ServerHello:
    # The negotiated version: supported_versions if the server sent it (TLS 1.3, RFC 8446 4.2.1), else legacy_version.
    chosen = supported_versions(hello.extensions.get(EXT_SUPPORTED_VERSIONS, b""), SERVER_HELLO)
    version = chosen[0] if chosen else hello.legacy_version
    [code] = hello.cipher_suites
    return ServerHello(hello.legacy_version, hello.random, code, cipher_suite_name(code), version,
                       hello.compression_methods[0])


def _certificates(body: bytes) -> list[Certificate]:
    """TLS 1.2 Certificate message (RFC 5246 7.4.2): u24 list length, then u24-prefixed DER certs."""
    certs = []
    total = int.from_bytes(body[:3], "big")
    pos = 3
    while pos + 3 <= min(len(body), 3 + total):
        n = int.from_bytes(body[pos:pos + 3], "big")
        der = body[pos + 3:pos + 3 + n]
        pos += 3 + n
        try:
            certs.append(_certificate(x509.load_der_x509_certificate(der)))
        except (ValueError, x509.InvalidVersion):
            # cryptography parses lazily: a damaged field (a version other than v1-v3, a bad
            # extension) raises when read. A certificate that cannot be read is not shown.
            continue
    return certs


def _certificate(cert: x509.Certificate) -> Certificate:
    try:
        san_ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sans = tuple(str(v) for v in san_ext.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        sans = ()
    return Certificate(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), sans,
                       cert.not_valid_before_utc.isoformat(), cert.not_valid_after_utc.isoformat(),
                       f"{cert.serial_number:x}")
