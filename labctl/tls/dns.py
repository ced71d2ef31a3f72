"""DNS messages (RFC 1035) as the wire shows them: who asked for which name, and what came back.

Our own reader of the message format (RFC 1035 section 4.1), because dpkt's
refuses a whole message for one resource record type it does not know (an
HTTPS record, type 65, RFC 9460), and reads AAAA answers as nothing. Here every
record's type is kept, as its IANA mnemonic or as TYPEnnn (RFC 3597 section
5); what a record holds is shown for the types a reader of names and
addresses needs (A, AAAA, CNAME, NS, PTR, DNAME, MX, SRV, TXT), and as its
size for the others. Names are followed through compression pointers (RFC 1035
section 4.1.4), each pointer strictly backwards, so a loop cannot be built.

Over UDP a datagram is one message; over TCP (RFC 1035 section 4.2.2, RFC
7766) each message is preceded by its 2-byte length, and one stream carries
several: tcp_messages splits a reassembled stream.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# IANA's DNS resource record TYPEs (https://www.iana.org/assignments/dns-parameters), by mnemonic.
TYPES = {1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL", 11: "WKS",
         12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 19: "X25", 20: "ISDN",
         21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA", 29: "LOC",
         30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6",
         39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC",
         48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO",
         57: "RKEY", 58: "TALINK", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB",
         65: "HTTPS", 99: "SPF", 104: "NID", 105: "L32", 106: "L64", 107: "LP", 108: "EUI48", 109: "EUI64",
         249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "ANY", 256: "URI",
         257: "CAA", 258: "AVC", 259: "DOA", 260: "AMTRELAY", 32768: "TA", 32769: "DLV"}
A, NS, CNAME, PTR, MX, TXT, AAAA, SRV, DNAME = 1, 2, 5, 12, 15, 16, 28, 33, 39
MAX_NAME = 255              # octets of a name on the wire (RFC 1035 section 2.3.4)


def type_name(code: int) -> str:
    """'HTTPS' for 65; 'TYPE65534' for a type IANA has not named (RFC 3597 section 5)."""
    return TYPES.get(code, f"TYPE{code}")


class DnsFormatError(ValueError):
    """Bytes that are not a DNS message (or stop inside one)."""


@dataclass(frozen=True)
class DnsMessage:
    """One DNS query or response, with its first question and what its answer section says."""

    time: float                 # seconds since the capture's first frame
    src: str
    dst: str
    id: int
    name: str                   # the question's name, "." for the root
    qtype: str                  # its type's mnemonic (type_name)
    response: bool
    rcode: int
    authoritative: bool
    answers: tuple[str, ...]    # each answer record's data: an address, a name, or "HTTPS record, 79 bytes"
    frame: int = 0              # the frame that carried it (over TCP: its last byte)
    transport: str = "udp"
    qtype_code: int = 0         # dns.qry.type
    answer_types: tuple[int, ...] = ()          # dns.resp.type of each answer, same order as answers

    def to_dict(self) -> dict[str, object]:
        return {"time": round(self.time, 6), "frame": self.frame, "transport": self.transport, "src": self.src,
                "dst": self.dst, "id": self.id, "name": self.name, "qtype": self.qtype, "qtype_code": self.qtype_code,
                "response": self.response, "rcode": self.rcode, "authoritative": self.authoritative,
                "answers": list(self.answers), "answer_types": [type_name(code) for code in self.answer_types]}


def read_name(message: bytes, pos: int) -> tuple[str, int]:
    """The domain name at POS, and where the bytes after it start (RFC 1035 sections 3.1 and 4.1.4).

    A compression pointer must point before the pointer itself (so no loop), and
    a name is at most 255 octets; labels are shown as presentation text (a dot or
    a byte that is not printable ASCII escaped as \\DDD, RFC 4343 section 2.1).
    Raises DnsFormatError.
    """
    labels: list[str] = []
    after = -1
    octets = 0
    limit = len(message)
    while True:
        if pos >= limit:
            raise DnsFormatError("a name runs past the end of the message")
        size = message[pos]
        if size & 0xC0 == 0xC0:
            if pos + 1 >= limit:
                raise DnsFormatError("a compression pointer runs past the end of the message")
            target = ((size & 0x3F) << 8) | message[pos + 1]
            if after < 0:
                after = pos + 2
            if target >= pos:
                raise DnsFormatError("a compression pointer points forward (a loop)")
            pos = target
            continue
        if size & 0xC0:
            raise DnsFormatError(f"label type 0x{size & 0xC0:02x} is not defined")
        if size == 0:
            break
        octets += size + 1
        if octets + 1 > MAX_NAME:
            raise DnsFormatError("a name longer than 255 octets")
        label = message[pos + 1:pos + 1 + size]
        if len(label) < size:
            raise DnsFormatError("a label runs past the end of the message")
        labels.append("".join(chr(b) if 0x21 <= b <= 0x7E and b not in (0x2E, 0x5C) else
                              f"\\{chr(b)}" if b in (0x2E, 0x5C) else f"\\{b:03d}" for b in label))
        pos += 1 + size
    return ".".join(labels) or ".", (after if after >= 0 else pos + 1)


def _rdata(message: bytes, kind: int, start: int, size: int) -> str:
    """An answer's data in presentation form, for the types a reader of names and addresses needs."""
    data = message[start:start + size]
    if kind == A and size == 4:
        return socket.inet_ntop(socket.AF_INET, data)
    if kind == AAAA and size == 16:
        return socket.inet_ntop(socket.AF_INET6, data)
    if kind in (CNAME, NS, PTR, DNAME):
        return read_name(message, start)[0]
    if kind == MX and size >= 3:
        return f"{struct.unpack_from('!H', data)[0]} {read_name(message, start + 2)[0]}"
    if kind == SRV and size >= 7:
        priority, weight, port = struct.unpack_from("!HHH", data)
        return f"{priority} {weight} {port} {read_name(message, start + 6)[0]}"
    if kind == TXT:
        strings, pos = [], 0
        while pos < size:
            strings.append(data[pos + 1:pos + 1 + data[pos]].decode("latin-1"))
            pos += 1 + data[pos]
        return " ".join(f'"{s}"' for s in strings)
    return f"{type_name(kind)} record, {size} bytes"


_HEADER = struct.Struct("!HHHHHH")
_QUESTION = struct.Struct("!HH")
_RECORD = struct.Struct("!HHIH")


def parse_dns(payload: bytes, t: float, src: str, dst: str, frame: int = 0,
              transport: str = "udp") -> DnsMessage | None:
    """The DNS message PAYLOAD (RFC 1035 section 4.1), or None if it is not one (or has no question).

    Answer records are read as far as they are whole: a record of a type not
    known here is kept (type_name), a damaged one ends the list.
    """
    try:
        ident, flags, questions, answer_count, _, _ = _HEADER.unpack_from(payload)
        if not questions:
            return None
        name, pos = read_name(payload, 12)
        qtype, _ = _QUESTION.unpack_from(payload, pos)
        pos += 4
        for _ in range(questions - 1):
            pos = read_name(payload, pos)[1] + 4
    except (struct.error, DnsFormatError):
        return None
    answers: list[str] = []
    types: list[int] = []
    try:
        for _ in range(answer_count):
            pos = read_name(payload, pos)[1]
            kind, _, _, size = _RECORD.unpack_from(payload, pos)
            pos += 10
            if pos + size > len(payload):
                break
            answers.append(_rdata(payload, kind, pos, size))
            types.append(kind)
            pos += size
    except (struct.error, DnsFormatError, IndexError):
        pass
    return DnsMessage(t, src, dst, ident, name, type_name(qtype), bool(flags & 0x8000), flags & 0x000F,
                      bool(flags & 0x0400), tuple(answers), frame, transport, qtype, tuple(types))


def tcp_messages(stream: bytes) -> list[tuple[int, int]]:
    """Where each DNS message lies in one direction of a DNS-over-TCP stream (RFC 1035 section 4.2.2):
    (start, end) offsets of each message after its 2-byte length, as far as the stream holds whole ones."""
    out = []
    pos = 0
    while pos + 2 <= len(stream):
        size = int.from_bytes(stream[pos:pos + 2], "big")
        if size < 12 or pos + 2 + size > len(stream):
            break
        out.append((pos + 2, pos + 2 + size))
        pos += 2 + size
    return out
