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
import dataclasses
import hashlib
import io
import struct
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from cryptography import x509

from ..files import PathLike
from . import der as der_walk
from .constants import (ALERT, APPLICATION_DATA, CERTIFICATE, CERTIFICATE_REQUEST, CHANGE_CIPHER_SPEC, CLIENT_HELLO,
                        CONTENT_TYPES, EXT_ALPN, EXT_COOKIE, EXT_KEY_SHARE, EXT_PRE_SHARED_KEY, EXT_SERVER_NAME,
                        EXT_SUPPORTED_GROUPS, EXT_SUPPORTED_VERSIONS, FINISHED, HANDSHAKE, HELLO_RETRY_REQUEST,
                        HELLO_RETRY_REQUEST_RANDOM, SERVER_HELLO, SSL30, TLS10, TLS11, TLS12, TLS13, alert_level_name,
                        alert_name, cipher_suite_name, content_type_name, extension_name, group_name, is_tls13, null_cipher_mac_length,
                        version_name)
from .dns import DnsMessage, parse_dns, tcp_messages
from .packets import ACK, FIN, LINK_TYPE_NAMES, RST, SYN, TCP, Segment, decode
from .pcapfile import Capture, open_capture, reader as capture_reader
from .pcapfile import CaptureFormatError as CaptureFormatError, read_capture as read_capture
from .records import (HEADER_LEN, MAX_RECORD, Hello, alpn_protocols, key_shares, named_groups, parse_hello,
                      server_name, split_handshake, supported_versions, walk_records)
from .tcp import NOTHING, Assembled, Direction, Hole

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
    dropped: int = 0            # payload bytes captured but not kept in ``payload`` (analyze with keep=False)

    @property
    def payload_len(self) -> int:
        """tcp.len, or udp.length minus its 8-byte header: what crossed the wire, captured or not."""
        return len(self.payload) + self.dropped + self.missing

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
    holes: dict[str, list[Hole]] = field(default_factory=lambda: {C2S: [], S2C: []})   # TCP: what was not captured

    @property
    def label(self) -> str:
        return f"{endpoint(self.client, self.client_port)} → {endpoint(self.server, self.server_port)} {self.proto}"

    def to_dict(self) -> dict[str, object]:
        return {"proto": self.proto, "client": self.client, "client_port": self.client_port,
                "server": self.server, "server_port": self.server_port,
                "first_seen": round(self.first_seen, 6), "last_seen": round(self.last_seen, 6),
                "packets": dict(self.packets), "payload_bytes": dict(self.payload_bytes),
                "wire_bytes": dict(self.wire_bytes), "gaps": dict(self.gaps), "truncated": dict(self.truncated),
                "holes": {d: [h.to_dict() for h in holes] for d, holes in self.holes.items()}}

    def turn_around(self) -> None:
        """Swap client and server (the hellos showed the ports' guess wrong), with every per-direction count."""
        self.client, self.client_port, self.server, self.server_port = (self.server, self.server_port,
                                                                         self.client, self.client_port)
        for counts in (self.packets, self.payload_bytes, self.wire_bytes, self.gaps, self.truncated):
            counts[C2S], counts[S2C] = counts[S2C], counts[C2S]
        self.holes[C2S], self.holes[S2C] = self.holes[S2C], self.holes[C2S]


@dataclass(frozen=True)
class TlsRecord:
    direction: str
    time: float
    content_type: int
    version: int
    length: int
    offset: int                                   # where the header starts in the direction's stream
    frame: int                                    # the frame that completed it: where tshark shows the record
    fragment: bytes = field(repr=False, compare=False)     # as captured: cut short when ``missing``
    missing: int = 0            # bytes of the fragment the capture does not hold (a hole, a cut frame, its end)
    after_gap: int = 0          # stream bytes between the previous record's end and this header that were not
                                # read as records (a hole, and what was skipped to find this header again): an
                                # unknown number of records, so of sequence numbers, was lost before this one

    @property
    def complete(self) -> bool:
        """Whether every byte of the record was captured (tshark lists only these after a hole)."""
        return not self.missing

    @property
    def type_name(self) -> str:
        return content_type_name(self.content_type)

    @property
    def header(self) -> bytes:
        return struct.pack("!BHH", self.content_type, self.version, self.length)

    def to_dict(self) -> dict[str, object]:
        return {"direction": self.direction, "time": round(self.time, 6), "content_type": self.content_type,
                "type": self.type_name, "version": f"0x{self.version:04x}", "length": self.length,
                "offset": self.offset, "missing": self.missing, "after_gap": self.after_gap}


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
    extensions: tuple[int, ...] = ()       # the extension types, in the order sent (a repeated one once)

    def to_dict(self) -> dict[str, object]:
        return {"legacy_version": f"0x{self.legacy_version:04x}", "random": self.random.hex(), "sni": self.sni,
                "extensions": [extension_name(code) for code in self.extensions],
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
    psk: bool = False            # it accepted a pre-shared key (TLS 1.3 resumption, RFC 8446 4.2.11)

    def to_dict(self) -> dict[str, object]:
        return {"legacy_version": f"0x{self.legacy_version:04x}", "random": self.random.hex(),
                "cipher_suite": f"0x{self.cipher_suite:04x}", "cipher": self.cipher_name,
                "version": version_name(self.version), "compression_method": self.compression_method,
                "key_share_group": None if self.group is None else group_name(self.group),
                "pre_shared_key": self.psk}


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
class Preamble:
    """What a connection carried in clear before TLS started in it (STARTTLS and its kin)."""

    name: str                   # "SMTP STARTTLS", "PostgreSQL SSLRequest", "HTTP CONNECT", "SOCKS5", "N clear bytes"
    sizes: dict[str, int]       # bytes before the first TLS record, per direction

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "bytes": dict(self.sizes)}


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
    preamble: Preamble | None = None     # clear bytes before TLS, named by the protocol that sent them
    missing_direction: str | None = None   # C2S or S2C: no byte of that direction was captured
    sslv2_client_hello: int | None = None  # the version an SSLv2-format ClientHello offered (not dissected)
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
        """TLS 1.3 (and its drafts) sends every Certificate after the ServerHello, encrypted (RFC 8446 4.4.2);
        a handshake resumed with a pre-shared key sends none (4.2.11)."""
        return self.version is not None and is_tls13(self.version) and not (self.server_hello and self.server_hello.psk)

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
                           else r.fragment[:max(0, r.length - r.missing - mac)])

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
        They also end where the capture lost bytes: a message is never joined
        from bytes on both sides of a hole, nor completed from later records
        when its own record was cut short (TlsRecord.missing, after_gap).
        """
        messages: list[bytes] = []
        buffer = b""
        for record, how, data in self._protections():
            if record.direction != direction:
                continue
            if data is None or record.after_gap and record.content_type == HANDSHAKE:
                break                   # encrypted from here, or bytes lost before it: never joined across
            if record.content_type != HANDSHAKE:
                continue
            whole, buffer = split_handshake(buffer + data)
            for message in whole:
                messages.append(message)
                if how == NULL_CIPHER and message[0] == FINISHED:
                    return messages
            if record.missing:
                break                   # cut short: a message is never completed from later records
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
                "preamble": self.preamble.to_dict() if self.preamble else None,
                "missing_direction": self.missing_direction,
                "sslv2_client_hello": None if self.sslv2_client_hello is None else
                version_name(self.sslv2_client_hello),
                "records": [r.to_dict() | {"protection": p} for r, p in zip(self.records, self.protection())]}


@dataclass(frozen=True)
class Undissected:
    """Flows that look like a protocol of TLS's family the analyzer does not dissect (QUIC, DTLS, SSLv2).

    They are named, never counted as "no TLS": QUIC (RFC 9000) carries TLS 1.3
    handshake messages in its own CRYPTO frames, DTLS (RFC 6347, RFC 9147) is
    TLS's record layer over UDP, and an SSLv2-format ClientHello (RFC 6101
    appendix E.2, RFC 5246 appendix E.2) opens a connection in SSL 2.0's framing.
    """

    protocol: str                   # "QUIC", "DTLS" or "SSLv2"
    transport: str                  # "udp" or "tcp"
    versions: tuple[str, ...]       # as the packets say: QUIC ("version 1",), DTLS ("version 1.2",), SSLv2 the
                                    # version its ClientHello offers ("TLS 1.2",)
    flows: tuple[Flow, ...]

    def to_dict(self) -> dict[str, object]:
        return {"protocol": self.protocol, "transport": self.transport, "versions": list(self.versions),
                "flows": [f.label for f in self.flows]}


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
    undissected: list[Undissected] = field(default_factory=list)     # QUIC, DTLS, SSLv2: named, not dissected
    kept: bool = True           # every byte kept; False: read in bounded memory, payloads previewed (dissect)

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
                "application_data_kept": "whole" if self.kept else f"first {PREVIEW} bytes of each record",
                "not_dissected": [{"packets": n, "what": what} for what, n in self.not_dissected.items()],
                "flows": [f.to_dict() for f in self.flows], "dns": [d.to_dict() for d in self.dns],
                "tls": [t.to_dict() for t in self.tls], "undissected": [u.to_dict() for u in self.undissected]}


# -- reading ------------------------------------------------------------------------

def analyze_file(path: PathLike, keep: bool = True) -> Observation:
    """Read and dissect the capture at PATH, forward from the open file (see open_capture for what is
    refused): memory holds what is kept of it, never the file whole (see dissect for KEEP)."""
    with open_capture(path) as capture:
        return dissect(capture, keep)


def analyze(data: bytes, name: str = "the capture", keep: bool = True) -> Observation:
    """Dissect a whole capture held in memory (its frames are read in place)."""
    return dissect(capture_reader(data, name), keep)


def analyze_stream(handle: io.RawIOBase | io.BufferedIOBase, name: str = "the capture",
                   keep: bool = True) -> Observation:
    """Dissect a capture read forward from HANDLE (a binary file object, left open)."""
    return dissect(Capture(handle, name), keep)


# proto, then both ends in sorted order, then which connection on that 4-tuple (a port reused after a
# connection closed starts the next: RFC 9293 section 3.4, as tshark's tcp.stream counts them)
_FlowKey = tuple[str, tuple[str, int], tuple[str, int], int]


DNS_PORTS = (53, 5353, 5355)    # DNS (RFC 1035), multicast DNS (RFC 6762), LLMNR (RFC 4795): one message format

# With keep=False a TCP direction holding more captured bytes than SETTLE_AT has
# its records read so far (_settle) and those bytes let go: memory is bounded by
# what one direction holds between two settles (plus out-of-order segments
# waiting for a hole to fill), not by the file's size.
SETTLE_AT = 4 << 20
HEAD = 1 << 16          # bytes of a settled direction's start that are kept: preambles, hellos, clear text
PREVIEW = 256           # bytes of each application_data fragment kept with keep=False
PATIENCE = 4 * SETTLE_AT    # bytes held behind a hole before it is taken as never to be filled


def dissect(capture: Capture, keep: bool = True) -> Observation:
    """Every frame of CAPTURE, in one pass: flows, TCP streams, DNS messages, then TLS.

    The loop is the analyzer's hot path: one decode() per frame (headers read in
    place), and one copy of each payload.

    KEEP (the default) keeps every byte: Packet.payload, the reassembled
    streams (Observation.streams, find) and every record's fragment, for
    decryption and the lab's checks. keep=False is for reading big captures
    (`labctl analyze` without a key log): payloads are counted, not kept
    (Packet.dropped; UDP keeps its first PREVIEW bytes, for QUIC and DTLS), a
    stream keeps its first HEAD bytes, an application_data fragment its first
    PREVIEW bytes (``missing`` still counts only what was not captured), and
    TCP directions are read as they go (SETTLE_AT). Flows, holes, records,
    handshakes and DNS come out the same either way.
    """
    settled: dict[tuple[_FlowKey, str], _Settled] = {}
    flows: dict[_FlowKey, Flow] = {}
    tcp_dirs: dict[_FlowKey, dict[str, Direction]] = {}
    generation: dict[tuple[str, tuple[str, int], tuple[str, int]], int] = {}
    opened: dict[_FlowKey, int] = {}           # the sequence number of the client's SYN
    closed: set[_FlowKey] = set()              # a FIN or RST was seen
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
        tcp = segment.proto == TCP
        src, dst, sport, dport, flags = segment.src, segment.dst, segment.sport, segment.dport, segment.flags
        proto = "tcp" if tcp else "udp"
        kept = payload if keep else payload[:PREVIEW] if not tcp else b""
        packets.append(Packet(count, t, segment.src_mac, segment.dst_mac, src, dst, proto, sport, dport, flags,
                              segment.seq, len(frame), kept, segment.missing, wire_length, len(payload) - len(kept)))
        a, b = (src, sport), (dst, dport)
        ends = (proto, a, b) if a <= b else (proto, b, a)
        key = (ends[0], ends[1], ends[2], generation.get(ends, 0))
        flow = flows.get(key)
        syn = tcp and flags & (SYN | ACK) == SYN
        if flow is not None and syn and (key in closed or opened.get(key, segment.seq) != segment.seq
                                         or key not in opened and flow.payload_bytes[C2S] + flow.payload_bytes[S2C] > 0):
            # A new connection on a 4-tuple already used (not a retransmitted SYN): its own flow.
            generation[ends] = key[3] + 1
            key, flow = (ends[0], ends[1], ends[2], key[3] + 1), None
        if flow is None:
            client, server = _orient(proto, a, b, flags)
            flow = flows[key] = Flow(proto, client[0], client[1], server[0], server[1], t, t)
        if syn:
            opened.setdefault(key, segment.seq)
        if tcp and flags & (FIN | RST):
            closed.add(key)
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
                half.add(segment.seq, payload, t, count, len(payload) + segment.missing)
                if not keep and half.held > SETTLE_AT:
                    read = _settle(half, direction, settled.get((key, direction)))
                    if read is not None:
                        settled[(key, direction)] = read
        elif (sport in DNS_PORTS or dport in DNS_PORTS) and payload and not segment.missing:
            message = parse_dns(payload, t, src, dst, count)
            if message is not None:
                dns.append(message)

    flow_list = list(flows.values())
    streams: dict[tuple[int, str], bytes] = {}
    tls: list[TlsConnection] = []
    sslv2: list[tuple[Flow, int]] = []
    for index, (key, flow) in enumerate(flows.items()):
        if key not in tcp_dirs:
            continue
        held = {d: half.assemble() for d, half in tcp_dirs[key].items()}
        done = {d: settled[(key, d)] for d in held if (key, d) in settled}
        # Where TLS starts, the hellos and the preamble are read from a settled direction's head.
        heads = {d: done[d].head if d in done else assembled for d, assembled in held.items()}
        if _orient_by_hellos(flow, heads) is not heads:
            held = {C2S: held[S2C], S2C: held[C2S]}
            done = {(S2C if d == C2S else C2S): _turned(v, S2C if d == C2S else C2S) for d, v in done.items()}
        per_dir = {d: done[d].head if d in done else held[d] for d in held}
        for direction, assembled in held.items():
            before = done[direction] if direction in done else None
            holes = (before.holes + [_shifted_hole(h, before.offset) for h in assembled.holes] if before
                     else list(assembled.holes))
            flow.gaps[direction] = len(holes)
            flow.holes[direction] = holes
            streams[(index, direction)] = per_dir[direction].data if keep else per_dir[direction].data[:HEAD]
        if 53 in (flow.client_port, flow.server_port):
            dns += _dns_over_tcp(flow, per_dir)
        offered = _sslv2_client_hello(per_dir[C2S].data)
        if offered is not None:
            sslv2.append((flow, offered))
        connection = _tls(flow, per_dir, None if keep else PREVIEW, done, held)
        if connection is not None:
            tls.append(connection)
    dns.sort(key=lambda m: m.frame)
    duration = last - start if start is not None else 0.0
    return Observation(count, total, duration, flow_list, dns, tls, packets, streams, truncated,
                       dict(not_dissected), dict(link_types), list(capture.secrets),
                       _undissected(flow_list, packets, sslv2), keep)


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
    """Which end is the client: the SYN sender; else the one talking to a well-known port; else the one
    whose port is in the ephemeral range; else the sender of the first packet seen."""
    src = a
    if proto == "tcp" and flags & SYN:
        return (a, b) if not flags & ACK else (b, a)
    other = b
    if src[1] < 1024 <= other[1]:
        return other, src
    if other[1] < 1024 <= src[1]:
        return src, other
    # Neither well known (a capture begun mid-connection): the end in the ephemeral range (IANA's
    # 49152-65535, Linux's from 32768) is the client.
    if src[1] < 32768 <= other[1]:
        return other, src
    return src, other


# -- TLS ------------------------------------------------------------------------------

PREAMBLE_LIMIT = 1 << 16     # bytes looked through for TLS's start after a clear preamble (STARTTLS takes far fewer)
CLEAN_RECORDS = 16           # records a start must be followed by, cleanly, to count (or the piece's end first)


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int] | None:
    """(content type, version, length) of the record header at POS, if walk_records would read it there.

    None if fewer than 5 bytes lie before END or the header is not TLS's (RFC 8446 section 5.1).
    """
    if pos + HEADER_LEN > end:
        return None
    content_type, version, length = struct.unpack_from("!BHH", data, pos)
    if content_type not in CONTENT_TYPES or version >> 8 != 3 or length > MAX_RECORD:
        return None
    return content_type, version, length


def _header_start(data: bytes, pos: int, end: int) -> bool:
    """Whether the fewer than 5 bytes from POS to END could begin a header _header would read."""
    head = data[pos:min(end, pos + HEADER_LEN)]
    return _header(head + bytes(HEADER_LEN - len(head)), 0, HEADER_LEN) is not None


def _plausible(data: bytes, pos: int, end: int) -> bool:
    """A header worth resynchronising on: content type 20-23, version SSL 3.0-TLS 1.3, 1 to 2^14 + 2048 bytes."""
    if pos + HEADER_LEN > end:
        return False
    content_type, version, length = struct.unpack_from("!BHH", data, pos)
    return (CHANGE_CIPHER_SPEC <= content_type <= APPLICATION_DATA and SSL30 <= version <= TLS13
            and 0 < length <= MAX_RECORD)


def _candidate(data: bytes, pos: int, end: int) -> bool:
    """A plausible header at POS whose successor is plausible too, or lies past END (Wireshark's resync test)."""
    if not _plausible(data, pos, end):
        return False
    following = pos + HEADER_LEN + int.from_bytes(data[pos + 3:pos + 5], "big")
    return following + HEADER_LEN > end or _plausible(data, following, end)


def _resync(stream: Assembled, pieces: list[tuple[int, int, int]], k: int, pos: int) -> tuple[int, int] | None:
    """(piece, index) of the first segment, at or after data index POS in piece K or later, that opens
    with a plausible record header whose successor is plausible too (or lies past the piece).

    Segment starts, as Wireshark resynchronises: once a hole has cost the
    sequence of records, it dissects each following segment from its first
    byte and takes up the records where one opens with a header. tshark 4.0
    finds no header in the middle of a segment (tests: hole_header_tls12.pcap),
    and neither does this, so both list the same records.
    """
    data, offsets = stream.data, stream.offsets
    for chunk in range(bisect.bisect_left(offsets, pos), len(offsets)):
        at = offsets[chunk]
        while k < len(pieces) and pieces[k][1] <= at:
            k += 1
        if k == len(pieces):
            break
        if _candidate(data, at, pieces[k][1]):
            return k, at
    return None


def _locate(pieces: list[tuple[int, int, int]], bases: list[int], offset: int) -> tuple[int, int | None] | None:
    """Where stream OFFSET is: (piece, index in data), (the piece after the hole holding it, None), or None
    past the end. BASES: each piece's stream offset, ascending."""
    k = bisect.bisect_right(bases, offset) - 1
    if k >= 0:
        lo, hi, base = pieces[k]
        if offset < base + hi - lo:
            return k, lo + offset - base
    return (k + 1, None) if k + 1 < len(pieces) else None


def _record(stream: Assembled, direction: str, index: int, offset: int, header: tuple[int, int, int],
            end: int, after_gap: int, preview: int | None) -> TlsRecord:
    """The record whose header is at data INDEX (stream OFFSET) and whose captured bytes end at data END,
    dated by the segment that carried its header and numbered by the frame that completed it (or carried
    its last captured byte). With PREVIEW, an application_data fragment keeps only its first PREVIEW bytes."""
    content_type, version, length = header
    offsets, frames = stream.offsets, stream.frames
    first = max(bisect.bisect_right(offsets, index) - 1, 0)
    last = bisect.bisect_right(offsets, end - 1) - 1
    captured = end - index - HEADER_LEN
    stop = end if preview is None or content_type != APPLICATION_DATA else min(end, index + HEADER_LEN + preview)
    return TlsRecord(direction, stream.times[first], content_type, version, length, offset,
                     max(frames[first:last + 1]), stream.data[index + HEADER_LEN:stop], length - captured, after_gap)


def _records(stream: Assembled, direction: str, start: int = 0, preview: int | None = None, origin: int = 0,
             gap: int = 0) -> list[TlsRecord]:
    """The direction's records from data index START, in stream order (RFC 8446 section 5.1).

    Within a contiguous piece of the stream the walk follows the records'
    lengths until the bytes stop looking like TLS. Bytes on either side of a
    hole are never joined: a record the capture holds only in part (a hole, a
    frame cut by the snaplen, the capture's end) is kept with what was
    captured of it (``missing`` says how much was not), and the walk goes on at
    the end its header gives, if a header is captured there. When a hole
    swallowed the next header, the walk resumes at the first segment after it
    that opens with a plausible header whose successor is plausible too (as
    Wireshark resynchronises, _resync), and that record says how many stream bytes were passed over (``after_gap``).
    Each record is dated by the segment that carried its header, and numbered
    by the frame that completed it (where tshark shows a reassembled record).
    STREAM may be the rest of a longer stream whose first ORIGIN bytes were read
    already (_settle): offsets are then the whole stream's, and GAP is the
    first record's after_gap owed from before. PREVIEW: see _record.
    """
    data, pieces = stream.data, stream.pieces()
    bases = [base for _, _, base in pieces]
    located = _locate(pieces, bases, stream.stream_offset(start)) if start < len(data) else None
    if located is None or located[1] is None:
        return []
    k, pos = located[0], start
    records: list[TlsRecord] = []
    while True:
        lo, hi, base = pieces[k]
        piece = data if (lo, hi) == (0, len(data)) else data[lo:hi]
        for h in walk_records(piece, pos - lo):
            records.append(_record(stream, direction, lo + h.offset, origin + base + h.offset,
                                   (h.content_type, h.version, h.length), lo + h.end, gap, preview))
            gap = 0
            pos = lo + h.end
        expected = base + pos - lo                  # the stream offset where the next header should be
        header = _header(data, pos, hi)
        resume: tuple[int, int] | None
        if header is not None:
            # Its record runs past the piece: keep what was captured, and look where its header says the next is.
            records.append(_record(stream, direction, pos, origin + expected, header, hi, gap, preview))
            gap = 0
            expected += HEADER_LEN + header[2]
            located = _locate(pieces, bases, expected)
            if located is None:
                break                                # the stream ends inside it
            k, at = located
            if at is not None and _header(data, at, pieces[k][1]) is not None:
                pos = at                             # the sequence of records is unbroken
                continue
            resume = _resync(stream, pieces, k, pieces[k][0] if at is None else at)
        elif k + 1 < len(pieces) and (pos == hi or pos + HEADER_LEN > hi and _header_start(data, pos, hi)):
            resume = _resync(stream, pieces, k + 1, pieces[k + 1][0])     # a hole took the next header (or its end)
        else:
            break                                    # the bytes stop looking like TLS, or the stream ends
        if resume is None:
            break
        k, pos = resume
        gap = pieces[k][2] + pos - pieces[k][0] - expected
    return records


def _hello_type(data: bytes, pos: int, end: int) -> int | None:
    """CLIENT_HELLO or SERVER_HELLO if a handshake record at POS opens with one whose length is a hello's."""
    header = _header(data, pos, end)
    if header is None or header[0] != HANDSHAKE or pos + HEADER_LEN + 4 > end:
        return None
    kind = data[pos + HEADER_LEN]
    size = int.from_bytes(data[pos + HEADER_LEN + 1:pos + HEADER_LEN + 4], "big")
    # version (2), random (32), session id length (1), then at least a suite and a compression method
    return kind if kind in (CLIENT_HELLO, SERVER_HELLO) and 38 <= size < 1 << 17 else None


def _clean(data: bytes, pos: int, end: int) -> bool:
    """Whether records follow each other cleanly from POS: to END, or for CLEAN_RECORDS records."""
    for _ in range(CLEAN_RECORDS):
        if pos == end:
            return True
        header = _header(data, pos, end)
        if header is None:
            # Fewer than 5 bytes left (a header cut by the piece's end) or bytes that are not a header.
            return pos + HEADER_LEN > end and _header_start(data, pos, end)
        pos += HEADER_LEN + header[2]
        if pos >= end:
            return True                             # the piece ends inside this record
    return True


@dataclass(frozen=True)
class _Start:
    index: int                  # where the direction's first record header is in its data
    hello: int | None           # CLIENT_HELLO or SERVER_HELLO when that record opens with one
    preamble: int               # clear bytes before it


def _tls_start(stream: Assembled) -> _Start | None:
    """Where TLS starts in one direction, or None.

    At its first captured byte: a handshake record, or records that run
    cleanly to the end of the first piece (a capture begun mid-connection,
    on a record boundary), or after an SSLv2-format ClientHello. Else after
    a clear preamble (STARTTLS and its kin, SSLRequest, CONNECT, SOCKS): the
    first ClientHello or ServerHello record within PREAMBLE_LIMIT bytes that
    the following records continue cleanly.
    """
    pieces = stream.pieces()
    if not pieces:
        return None
    data = stream.data
    _, hi, _ = pieces[0]
    first = _header(data, 0, hi)
    if first is not None and (first[0] == HANDSHAKE or _clean(data, 0, hi)):
        return _Start(0, _hello_type(data, 0, hi), 0)
    skip = _sslv2_length(data)
    if skip and skip < hi and _header(data, skip, hi) is not None and _clean(data, skip, hi):
        return _Start(skip, _hello_type(data, skip, hi), 0)
    pos, limit = 0, min(hi, PREAMBLE_LIMIT)
    while True:
        pos = data.find(b"\x16\x03", pos, limit)
        if pos < 0:
            return None
        hello = _hello_type(data, pos, hi)
        if hello is not None and _clean(data, pos, hi):
            return _Start(pos, hello, pos)
        pos += 1


def _orient_by_hellos(flow: Flow, per_dir: dict[str, Assembled]) -> dict[str, Assembled]:
    """PER_DIR, turned around with FLOW when the hellos say the ports' guess was wrong: the side that sends
    the ServerHello is the server (RFC 8446 section 4.1.3)."""
    c2s, s2c = _tls_start(per_dir.get(C2S, NOTHING)), _tls_start(per_dir.get(S2C, NOTHING))
    sent = {C2S: c2s.hello if c2s else None, S2C: s2c.hello if s2c else None}
    backwards = sent[C2S] == SERVER_HELLO or sent[S2C] == CLIENT_HELLO
    forwards = sent[C2S] == CLIENT_HELLO or sent[S2C] == SERVER_HELLO
    if not backwards or forwards:
        return per_dir
    flow.turn_around()
    return {C2S: per_dir.get(S2C, NOTHING), S2C: per_dir.get(C2S, NOTHING)}


_POSTGRES_SSLREQUEST = bytes.fromhex("0000000804d2162f")     # length 8, code 80877103 (PostgreSQL protocol 53.2.10)


def _preamble_name(client: bytes, server: bytes) -> str | None:
    """The protocol whose clear dialogue came before TLS, by its well-known words; None if none is known.

    SMTP (RFC 3207), IMAP (RFC 3501 6.2.1), POP3 (RFC 2595 4), FTP (RFC 4217),
    XMPP (RFC 6120 5.4), LDAP (RFC 4511 4.14), NNTP (RFC 4642) STARTTLS, PostgreSQL's
    SSLRequest, an HTTP CONNECT tunnel (RFC 9110 9.3.6), SOCKS4 and SOCKS5 (RFC 1928).
    """
    upper = client.upper()
    if client.startswith(_POSTGRES_SSLREQUEST):
        return "PostgreSQL SSLRequest"
    if client.startswith(b"CONNECT "):
        return "HTTP CONNECT"
    if len(client) >= 3 and client[0] == 5 and 0 < client[1] == len(client[2:2 + client[1]]):
        return "SOCKS5"
    if len(client) >= 9 and client[0] == 4 and client[1] in (1, 2):
        return "SOCKS4"
    if b"<STARTTLS" in upper:
        return "XMPP STARTTLS"
    if b"1.3.6.1.4.1.1466.20037" in client:
        return "LDAP StartTLS"
    if b"AUTH TLS" in upper or b"AUTH SSL" in upper:
        return "FTP AUTH TLS"
    if b"STLS" in upper and server.startswith(b"+OK"):
        return "POP3 STLS"
    if b"STARTTLS" in upper:
        if server.startswith(b"* OK"):
            return "IMAP STARTTLS"
        if server.startswith(b"220") or b"EHLO" in upper or b"HELO" in upper:
            return "SMTP STARTTLS"
        if server.startswith((b"200", b"201")):
            return "NNTP STARTTLS"
        return "STARTTLS"
    return None


@dataclass
class _Settled:
    """What dissect(keep=False) has read of one TCP direction already, and let go of (_settle)."""

    head: Assembled             # the direction's first HEAD bytes: where TLS starts, hellos, a preamble
    start: _Start | None        # where TLS starts in it; None: not TLS, and nothing past the head is read
    records: list[TlsRecord]    # read so far, offsets in the whole stream
    holes: list[Hole]           # found so far, offsets in the whole stream
    offset: int                 # the stream offset where the bytes still held begin (a record header)
    gap: int                    # after_gap owed to the record read next (it was read once, then read again)
    reading: bool               # whether the record walk goes on (no: the bytes stopped looking like TLS)


def _cut(stream: Assembled, size: int) -> Assembled:
    """STREAM's first SIZE captured bytes, with where they came from and the holes among them."""
    n = bisect.bisect_left(stream.offsets, size)
    return Assembled(stream.data[:size], stream.offsets[:n], stream.times[:n], stream.frames[:n],
                     [h for h in stream.holes if h.at < size])


def _turned(settled: _Settled, direction: str) -> _Settled:
    """SETTLED, its records now said to go in DIRECTION (the flow was turned around)."""
    settled.records = [dataclasses.replace(r, direction=direction) for r in settled.records]
    return settled


def _shifted_hole(hole: Hole, offset: int) -> Hole:
    return hole._replace(offset=hole.offset + offset)


def _settle(half: Direction, direction: str, before: _Settled | None) -> _Settled | None:
    """Read HALF's records so far and let go of their bytes (dissect with keep=False).

    The last record read may go on in bytes still to come: its header is kept
    and it is read again next time, so a record is never split. The first
    time, where TLS starts is found as dissect would find it at the end.
    """
    whole = half.assemble()
    # A hole may yet be filled (a segment reordered, or retransmitted later): read up to the first one,
    # until so much has piled up behind it that the wire cannot still be sending it.
    stream = _cut(whole, whole.holes[0].at) if whole.holes and half.held < PATIENCE else whole
    if not stream.data:
        return before                              # nothing before the hole yet: wait for it to fill
    begin = 0
    if before is None:
        start = _tls_start(stream)
        before = _Settled(_cut(stream, HEAD), start, [], [], 0, 0, start is not None)
        begin = start.index if start else 0
    release = stream.stream_offset(len(stream.data))               # all of it, unless records go on
    if before.reading:
        records = _records(stream, direction, begin, PREVIEW, before.offset, before.gap)
        if records:
            last = records[-1].offset - before.offset          # in this stream
            if last + HEADER_LEN + records[-1].length + HEADER_LEN + MAX_RECORD >= release:
                release = last                     # the walk reached the held end: read the last one again
                before.gap = records.pop().after_gap
            else:
                before.reading = False             # the bytes stopped looking like TLS well before the end
        else:
            before.reading = False
        before.records += records
    before.holes += [_shifted_hole(h, before.offset) for h in whole.holes if h.offset < release]
    before.offset += release
    half.release(release)
    return before


def _tls(flow: Flow, per_dir: dict[str, Assembled], preview: int | None = None,
         done: dict[str, _Settled] | None = None, held: dict[str, Assembled] | None = None) -> TlsConnection | None:
    """FLOW's TLS connection, or None if neither direction carries TLS.

    A direction that was not captured at all does not stop the other from
    being read (missing_direction says which); TLS may start after a clear
    preamble in each direction (Preamble names it). DONE: directions read
    already in part (_settle), whose PER_DIR entry is their head and whose
    HELD entry is the stream past what was read. PREVIEW: see _record.
    """
    done = done or {}
    streams = {C2S: per_dir.get(C2S, NOTHING), S2C: per_dir.get(S2C, NOTHING)}
    starts = {d: done[d].start if d in done else _tls_start(streams[d]) for d in (C2S, S2C)}
    found = {d: s for d, s in starts.items() if s is not None}
    if not found:
        return None
    before = {d: streams[d].data[:s.index] for d, s in found.items() if s.preamble}
    name = _preamble_name(before.get(C2S, b""), before.get(S2C, b"")) if before else None
    if len(found) == 1 and before:
        # TLS after a preamble on one side only: the other side sent nothing captured, or the preamble is known.
        [(direction, _)] = found.items()
        other = S2C if direction == C2S else C2S
        if streams[other].data and name is None:
            return None
    preamble = None
    if before:
        sizes = {d: s.preamble for d, s in found.items()}
        preamble = Preamble(name or f"{sum(sizes.values())} clear bytes", sizes)
    records = []
    for direction in (C2S, S2C):
        start = found.get(direction)
        prior = done.get(direction)
        if prior is None:
            records += _records(streams[direction], direction, start.index if start else 0, preview)
            continue
        records += prior.records
        if prior.reading and held is not None:
            records += _records(held[direction], direction, 0, preview, prior.offset, prior.gap)
    records.sort(key=lambda r: (r.time, r.direction != C2S, r.offset))
    missing = [d for d in (C2S, S2C) if not streams[d].data]
    connection = TlsConnection(flow, records, preamble, missing[0] if len(missing) == 1 else None,
                               _sslv2_client_hello(streams[C2S].data))
    for direction in (C2S, S2C):
        _read_handshake(connection, [r for r in records if r.direction == direction])
    return connection


# -- not dissected: QUIC, DTLS, SSLv2 -------------------------------------------------------

SSL20 = 0x0002


def _sslv2_length(data: bytes) -> int:
    """Bytes of the SSLv2-format ClientHello DATA opens with (2-byte header included), or 0.

    RFC 6101 appendix E.2 / RFC 5246 appendix E.2: a 2-byte header with the
    high bit set and a 15-bit length, msg_type 1, version, then the lengths of
    the cipher specs (3 bytes each), session id (0 or 16) and challenge (16-32).
    """
    if len(data) < 11 or not data[0] & 0x80 or data[2] != CLIENT_HELLO:
        return 0
    length = ((data[0] & 0x7F) << 8) | data[1]
    version, specs, session, challenge = struct.unpack_from("!HHHH", data, 3)
    if version not in (SSL20, SSL30, TLS10, TLS11, TLS12, TLS13) or not specs or specs % 3:
        return 0
    if session not in (0, 16) or not 16 <= challenge <= 32 or 9 + specs + session + challenge != length:
        return 0
    return 2 + length


def _sslv2_client_hello(data: bytes) -> int | None:
    """The version an SSLv2-format ClientHello at DATA's start offers (SSL20 for SSL 2.0 itself), or None."""
    return int.from_bytes(data[3:5], "big") if _sslv2_length(data) else None


_QUIC_VERSIONS = {0x00000001: "version 1", 0x6B3343CF: "version 2"}      # RFC 9000, RFC 9369


def _quic_version(payload: bytes) -> str | None:
    """The version of a QUIC long-header packet (RFC 8999 section 5.1, RFC 9000 17.2), or None.

    The header form and fixed bits set (0b11xxxxxx), a version QUIC defines
    (1, 2, an IETF draft 0xff0000NN, Google's Q0NN/T0NN), a connection ID of at most 20 bytes.
    """
    if len(payload) < 7 or payload[0] & 0xC0 != 0xC0 or payload[5] > 20:
        return None
    version = int.from_bytes(payload[1:5], "big")
    if version in _QUIC_VERSIONS:
        return _QUIC_VERSIONS[version]
    if version >> 8 == 0xFF0000 and 0 < version & 0xFF <= 34:
        return f"draft-{version & 0xFF}"
    tag = payload[1:5]
    if tag[:2] in (b"Q0", b"T0") and tag[2:].isdigit():
        return f"Google QUIC {tag.decode()}"
    return None


_DTLS_VERSIONS = {0xFEFF: "version 1.0", 0xFEFD: "version 1.2", 0xFEFC: "version 1.3"}     # RFC 4347, 6347, 9147


def _dtls_version(payload: bytes) -> int | None:
    """The record version of a DTLS datagram (RFC 6347 section 4.1: type, version, epoch, sequence, length), or None."""
    if len(payload) < 13 or not CHANGE_CIPHER_SPEC <= payload[0] <= APPLICATION_DATA:
        return None
    version = int.from_bytes(payload[1:3], "big")
    length = int.from_bytes(payload[11:13], "big")
    return version if version in _DTLS_VERSIONS and 0 < length <= len(payload) - 13 else None


def _undissected(flows: list[Flow], packets: list[Packet], sslv2: list[tuple[Flow, int]]) -> list[Undissected]:
    """The flows that look like QUIC or DTLS (UDP) or open with an SSLv2-format ClientHello (TCP)."""
    by_ends = {(f.proto, frozenset({(f.client, f.client_port), (f.server, f.server_port)})): f for f in flows}
    quic: dict[int, tuple[Flow, str]] = {}
    dtls: dict[int, tuple[Flow, int]] = {}
    for packet in packets:
        if packet.proto != "udp" or not packet.payload:
            continue
        flow = by_ends.get((packet.proto, frozenset({(packet.src, packet.sport), (packet.dst, packet.dport)})))
        if flow is None or id(flow) in quic:
            continue
        version = _quic_version(packet.payload)
        if version is not None:
            quic[id(flow)] = (flow, version)
            dtls.pop(id(flow), None)
            continue
        record_version = _dtls_version(packet.payload)
        if record_version is not None:
            # The highest record version the flow shows (a DTLS 1.2 ClientHello may say 1.0).
            seen = dtls.get(id(flow), (flow, 0xFFFF))[1]
            dtls[id(flow)] = (flow, min(seen, record_version))
    out = []
    if quic:
        out.append(Undissected("QUIC", "udp", tuple(dict.fromkeys(v for _, v in quic.values())),
                               tuple(f for f, _ in quic.values())))
    if dtls:
        out.append(Undissected("DTLS", "udp", tuple(dict.fromkeys(_DTLS_VERSIONS[v] for _, v in dtls.values())),
                               tuple(f for f, _ in dtls.values())))
    if sslv2:
        out.append(Undissected("SSLv2", "tcp", tuple(dict.fromkeys("SSL 2.0" if v == SSL20 else version_name(v)
                                                                   for _, v in sslv2)),
                               tuple(f for f, _ in sslv2)))
    return out


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
        # An alert is 2 bytes, level then description (RFC 8446 section 6); a clear record may hold several,
        # but only where the handshake was seen: a capture begun mid-connection cannot tell a longer
        # record from an encrypted alert (26 bytes under AES-GCM), as tshark cannot ("Encrypted Alert").
        seen = connection.client_hello is not None or connection.server_hello is not None
        if how == ENCRYPTED or not data or len(data) % 2 or len(data) > 2 and not (
                seen and all(level in (1, 2) for level in data[0::2])):
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
        compression_methods=hello.compression_methods, extensions=tuple(exts))


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
                       hello.compression_methods[0] if hello.compression_methods else None, _selected_group(hello),
                       EXT_PRE_SHARED_KEY in hello.extensions)


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
