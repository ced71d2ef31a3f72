"""TLS records, handshake messages and hellos, read from bytes.

One reading of the wire format for the whole lab: the analyzer walks the
record layer of each reassembled TCP stream with walk_records, splits the
handshake messages out of the records with split_handshake, and reads the
hellos with parse_hello; the key-log decryptor splits the handshake messages
it decrypts with split_handshake; the stolen-key attack reads the hellos'
extensions with hello_extensions and key_shares.

These functions read; they do not judge. Bytes that stop looking like TLS end
a walk, a message cut short is left for the caller, and only parse_hello
raises (ValueError) when a hello's fixed fields are cut short.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .constants import CLIENT_HELLO, CONTENT_TYPES, HELLO_RETRY_REQUEST, LAST_DRAFT_WITH_OWN_LAYOUT, SERVER_HELLO, tls13_draft

# -- the record layer (RFC 8446 section 5.1, RFC 5246 section 6.2) ---------------------------

HEADER_LEN = 5                     # ContentType type (1), ProtocolVersion legacy_record_version (2), uint16 length
MAX_RECORD = (1 << 14) + 2048      # RFC 5246 6.2.3: TLSCiphertext.length <= 2^14 + 2048, the largest any version allows


@dataclass(frozen=True)
class RecordHeader:
    """Where one whole record lies in a stream, and what its 5-byte header says."""

    offset: int             # where the header starts
    content_type: int       # the outer ContentType (TLS 1.3 protected records all say application_data)
    version: int            # legacy_record_version
    length: int             # of the fragment that follows the header

    @property
    def start(self) -> int:
        """Where the fragment starts."""
        return self.offset + HEADER_LEN

    @property
    def end(self) -> int:
        """Where the next record starts."""
        return self.offset + HEADER_LEN + self.length


def walk_records(stream: bytes, start: int = 0) -> list[RecordHeader]:
    """The whole records in STREAM from START, in order (RFC 8446 section 5.1).

    The walk stops where the bytes stop looking like TLS (a content type TLS does
    not define, a major version other than 3, a length over MAX_RECORD) or where
    the stream ends inside a record: the last header's ``end`` says how much was
    read (START if nothing was).
    """
    headers = []
    pos, end = start, len(stream)
    unpack = struct.unpack_from
    while pos + HEADER_LEN <= end:
        content_type, version, length = unpack("!BHH", stream, pos)
        if content_type not in CONTENT_TYPES or version >> 8 != 3 or length > MAX_RECORD:
            break
        if pos + HEADER_LEN + length > end:
            break                       # the stream ends inside this record
        headers.append(RecordHeader(pos, content_type, version, length))
        pos += HEADER_LEN + length
    return headers


# -- handshake messages (RFC 8446 section 4, RFC 5246 section 7.4) ---------------------------

def split_handshake(data: bytes) -> tuple[list[bytes], bytes]:
    """The whole handshake messages at the start of DATA, and the bytes after them.

    Each message is returned whole: msg_type (1), uint24 length, body. Messages
    may span records and records may hold several messages (RFC 8446 5.1), so
    the rest (an incomplete message, or b"") is for the caller to join with
    the next record's fragment.
    """
    messages = []
    pos, end = 0, len(data)
    while pos + 4 <= end:
        stop = pos + 4 + int.from_bytes(data[pos + 1:pos + 4], "big")
        if stop > end:
            break
        messages.append(data[pos:stop])
        pos = stop
    return messages, data[pos:]


# -- hellos and their extensions (RFC 8446 4.1.2-4.1.3 and 4.2, RFC 5246 7.4.1.2-7.4.1.4) ------

@dataclass(frozen=True)
class Hello:
    """A ClientHello or ServerHello (or a TLS 1.3 draft's HelloRetryRequest), field by field."""

    msg_type: int                         # CLIENT_HELLO, SERVER_HELLO or HELLO_RETRY_REQUEST
    legacy_version: int                   # client_version / server_version in TLS 1.2; a draft's version
    random: bytes                         # b"" in a draft's HelloRetryRequest, which has none
    session_id: bytes                     # b"" where the message has no such field (drafts, see parse_hello)
    cipher_suites: tuple[int, ...]        # the client's offer, or the one suite the server chose
    compression_methods: tuple[int, ...]  # likewise; () where the message has no such field
    extensions: dict[int, bytes]          # extension_type -> extension_data; a repeated type keeps the last


class _Reader:
    """Reads fixed fields and length-prefixed vectors from a message body, refusing to run past its end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"the hello is cut short in its {what}")
        piece = self.data[self.pos:self.pos + n]
        self.pos += n
        return piece

    def number(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, size_len: int, what: str) -> bytes:
        return self.take(self.number(size_len, what), what)


def parse_hello(message: bytes) -> Hello:
    """Read a whole ClientHello or ServerHello MESSAGE (msg_type, uint24 length, body).

    A ServerHello is read with the layout its version field calls for: RFC 8446
    4.1.3 and RFC 5246 7.4.1.3 (version, random, session id, cipher suite,
    compression method, extensions), or, when that field names TLS 1.3 draft 21
    or earlier, the drafts' own (version, random, cipher suite, extensions:
    draft-ietf-tls-tls13-21 section 4.1.3). A draft's HelloRetryRequest
    (msg_type 6, drafts before 22, section 4.1.4) is read too: version, a cipher
    suite from draft 19 on, extensions.

    Raises ValueError when the fixed fields (version, random, session id, cipher
    suites, compression) are cut short. The extensions are read as far as they
    go whole; a hello without any (TLS 1.2 allows it) has none.
    """
    kind = message[0]
    body = _Reader(message[4:4 + int.from_bytes(message[1:4], "big")])
    legacy_version = body.number(2, "version")
    draft = tls13_draft(legacy_version)
    if kind == HELLO_RETRY_REQUEST:
        chosen = (body.number(2, "cipher suite"),) if draft is None or draft >= 19 else ()
        return Hello(kind, legacy_version, b"", b"", chosen, (), _extensions(body.data, body.pos))
    random = body.take(32, "random")
    if kind == SERVER_HELLO and draft is not None and draft <= LAST_DRAFT_WITH_OWN_LAYOUT:
        suite = body.number(2, "cipher suite")
        return Hello(kind, legacy_version, random, b"", (suite,), (), _extensions(body.data, body.pos))
    session_id = body.vector(1, "session id")
    if kind == CLIENT_HELLO:
        suites = body.vector(2, "cipher suites")
        cipher_suites = tuple(int.from_bytes(suites[i:i + 2], "big") for i in range(0, len(suites) - 1, 2))
        compression = tuple(body.vector(1, "compression methods"))
    else:
        cipher_suites = (body.number(2, "cipher suite"),)
        compression = (body.number(1, "compression method"),)
    extensions = _extensions(body.data, body.pos)
    return Hello(kind, legacy_version, random, session_id, cipher_suites, compression, extensions)


def _extensions(body: bytes, pos: int) -> dict[int, bytes]:
    """Extension extensions<0..2^16-1>, from POS in a hello's body; an entry cut short ends the list."""
    if pos + 2 > len(body):
        return {}                       # no extensions at all
    end = min(len(body), pos + 2 + int.from_bytes(body[pos:pos + 2], "big"))
    pos += 2
    extensions: dict[int, bytes] = {}
    while pos + 4 <= end:
        kind, length = struct.unpack_from("!HH", body, pos)
        extensions[kind] = body[pos + 4:min(end, pos + 4 + length)]
        pos += 4 + length
    return extensions


def hello_extensions(message: bytes | None) -> dict[int, bytes]:
    """The extensions of a ClientHello or ServerHello MESSAGE; {} for None or a hello cut short."""
    if message is None:
        return {}
    try:
        return parse_hello(message).extensions
    except ValueError:
        return {}


def server_name(data: bytes) -> str | None:
    """The host_name in a server_name extension (RFC 6066 section 3), or None."""
    # ServerNameList: uint16 length, then entries of NameType (1; host_name is 0), uint16 length, name.
    if len(data) < 5 or data[2] != 0:
        return None
    n = int.from_bytes(data[3:5], "big")
    return data[5:5 + n].decode("ascii", "replace")


def alpn_protocols(data: bytes) -> list[str]:
    """The protocol names in an application_layer_protocol_negotiation extension (RFC 7301 section 3.1)."""
    # ProtocolNameList: uint16 length, then ProtocolName entries of uint8 length and name.
    names, pos = [], 2
    while pos < len(data):
        n = data[pos]
        names.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    return names


def supported_versions(data: bytes, msg_type: int) -> list[int]:
    """The versions in a supported_versions extension (RFC 8446 section 4.2.1).

    A ClientHello lists them (uint8 length, then uint16 each); a ServerHello
    carries the one it selected.
    """
    if msg_type != CLIENT_HELLO:
        return [int.from_bytes(data, "big")] if len(data) == 2 else []
    end = min(len(data), 1 + data[0]) if data else 0
    return [int.from_bytes(data[i:i + 2], "big") for i in range(1, end - 1, 2)]


def named_groups(data: bytes) -> list[int]:
    """The groups in a supported_groups extension (RFC 8446 section 4.2.7): uint16 length, then uint16 each."""
    end = min(len(data), 2 + int.from_bytes(data[:2], "big"))
    return [int.from_bytes(data[i:i + 2], "big") for i in range(2, end - 1, 2)]


def key_shares(data: bytes, msg_type: int) -> list[tuple[int, bytes]]:
    """(group, key_exchange) of each KeyShareEntry in a key_share extension (RFC 8446 section 4.2.8).

    A ClientHello lists its shares (uint16 length, then entries); a ServerHello
    carries one entry; a HelloRetryRequest only the group it asks for, given
    here with an empty key_exchange.
    """
    if msg_type != CLIENT_HELLO:
        if len(data) == 2:
            return [(int.from_bytes(data, "big"), b"")]
        pos, end = 0, len(data)
    else:
        pos, end = 2, min(len(data), 2 + int.from_bytes(data[:2], "big"))
    shares = []
    while pos + 4 <= end:
        group, n = struct.unpack_from("!HH", data, pos)
        shares.append((group, data[pos + 4:pos + 4 + n]))
        pos += 4 + n
    return shares
