"""A minimal reading of an X.509 certificate's tbsCertificate, for the certificates cryptography refuses.

cryptography reads certificates strictly (DER, RFC 5280): a certificate that
encodes a default value explicitly (BasicConstraints cA=FALSE), uses a BER
length, carries a version it does not know or a negative serial number is
refused, in part or whole. Such certificates are on the wire all the same and
Wireshark shows them. This module walks the tag-length-value structure (ITU-T
X.690 section 8.1) of RFC 5280 section 4.1's

    Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
                                  validity, subject, subjectPublicKeyInfo, [1], [2], [3] extensions }

as leniently as BER allows (long-form lengths where a short one would do), and
takes out only what the analyzer shows: serial number, issuer, validity,
subject, and the subjectAltName's dNSName entries. It raises ValueError where
the bytes do not have that shape at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

# X.690 universal tags, and the context-specific tags of RFC 5280 that matter here.
INTEGER, OCTET_STRING, OID, UTF8_STRING, SEQUENCE, SET = 0x02, 0x04, 0x06, 0x0C, 0x30, 0x31
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18
VERSION, EXTENSIONS = 0xA0, 0xA3            # tbsCertificate's [0] EXPLICIT version, [3] EXPLICIT extensions
DNS_NAME = 0x82                             # GeneralName's [2] IMPLICIT IA5String (RFC 5280 4.2.1.6)
SUBJECT_ALT_NAME = "2.5.29.17"

# How each string type of a Name's attribute values is written (X.680 section 41).
_STRINGS = {UTF8_STRING: "utf-8", 0x12: "ascii", 0x13: "ascii", 0x14: "latin-1", 0x16: "ascii", 0x1A: "ascii",
            0x1C: "utf-32-be", 0x1E: "utf-16-be"}


@dataclass(frozen=True)
class Tlv:
    """One element: its tag (the identifier octet) and where its contents lie in the buffer."""

    tag: int
    start: int      # first byte of the contents
    end: int        # one past the last


def element(data: bytes, pos: int, end: int) -> Tlv:
    """The element whose identifier octet is at POS (X.690 8.1.2-8.1.3), within DATA[:END].

    Lengths may be long-form where short would do (BER); an indefinite length,
    a multi-byte tag or contents that run past END raise ValueError.
    """
    if pos + 2 > end:
        raise ValueError("an element is cut short")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("a multi-byte tag")
    pos += 2
    if first < 0x80:
        length = first
    elif first == 0x80 or first - 0x80 > 4:
        raise ValueError("an indefinite or oversized length")
    else:
        n = first - 0x80
        if pos + n > end:
            raise ValueError("a length is cut short")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > end:
        raise ValueError("an element runs past its container")
    return Tlv(tag, pos, pos + length)


def children(data: bytes, parent: Tlv) -> list[Tlv]:
    """The elements inside a constructed element (a SEQUENCE, a SET, an EXPLICIT tag), in order."""
    out, pos = [], parent.start
    while pos < parent.end:
        child = element(data, pos, parent.end)
        out.append(child)
        pos = child.end
    return out


def oid(data: bytes, tlv: Tlv) -> str:
    """An OBJECT IDENTIFIER's dotted form (X.690 8.19): '2.5.4.3'."""
    arcs, value = [], 0
    for byte in data[tlv.start:tlv.end]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("an empty object identifier")
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def text(data: bytes, tlv: Tlv) -> str:
    """A string value, decoded as its type says (unknown types as UTF-8, errors replaced)."""
    return data[tlv.start:tlv.end].decode(_STRINGS.get(tlv.tag, "utf-8"), "replace")


def date_time(data: bytes, tlv: Tlv) -> datetime:
    """A UTCTime (two-digit years: 50-99 are 19xx, RFC 5280 4.1.2.5.1) or GeneralizedTime, in UTC."""
    raw = data[tlv.start:tlv.end].decode("ascii", "replace").rstrip("Z")
    if tlv.tag == UTC_TIME:
        raw = ("19" if int(raw[:2]) >= 50 else "20") + raw
    elif tlv.tag != GENERALIZED_TIME:
        raise ValueError("a validity time that is neither UTCTime nor GeneralizedTime")
    return datetime.strptime(raw[:14].ljust(14, "0"), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)


Name = tuple[tuple[tuple[str, str], ...], ...]     # RDNs in DER order, each (attribute OID, value) pairs


def name(data: bytes, tlv: Tlv) -> Name:
    """A Name (RFC 5280 4.1.2.4): a SEQUENCE of SETs of (type, value) SEQUENCEs."""
    rdns = []
    for rdn in children(data, tlv):
        pairs = []
        for attribute in children(data, rdn):
            kind, value = children(data, attribute)[:2]
            pairs.append((oid(data, kind), text(data, value)))
        rdns.append(tuple(pairs))
    return tuple(rdns)


@dataclass(frozen=True)
class TbsFields:
    """What the analyzer shows of a certificate, read by walking its DER."""

    serial: bytes                   # the INTEGER's content octets, as on the wire
    issuer: Name
    not_before: datetime
    not_after: datetime
    subject: Name
    dns_names: tuple[str, ...]      # subjectAltName dNSName entries; () without that extension


def read_certificate(der: bytes) -> TbsFields:
    """Walk a certificate's tbsCertificate (RFC 5280 section 4.1); ValueError if it does not have that shape."""
    outer = element(der, 0, len(der))
    tbs = children(der, outer)[0] if outer.tag == SEQUENCE else None
    if tbs is None or tbs.tag != SEQUENCE:
        raise ValueError("not a certificate: no tbsCertificate SEQUENCE")
    fields = children(der, tbs)
    if fields and fields[0].tag == VERSION:
        fields = fields[1:]
    if len(fields) < 6 or fields[0].tag != INTEGER:
        raise ValueError("not a certificate: tbsCertificate lacks its fields")
    serial, _signature, issuer, validity, subject = fields[:5]
    not_before, not_after = children(der, validity)[:2]
    dns: list[str] = []
    for extensions in (f for f in fields[6:] if f.tag == EXTENSIONS):
        for extension in children(der, children(der, extensions)[0]):
            parts = children(der, extension)
            if parts and parts[0].tag == OID and oid(der, parts[0]) == SUBJECT_ALT_NAME and parts[-1].tag == OCTET_STRING:
                names = element(der, parts[-1].start, parts[-1].end)
                dns += [text(der, n) for n in children(der, names) if n.tag == DNS_NAME]
    return TbsFields(der[serial.start:serial.end], name(der, issuer), date_time(der, not_before), date_time(der, not_after),
                     name(der, subject), tuple(dns))
