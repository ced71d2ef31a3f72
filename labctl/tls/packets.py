"""One captured frame, from its link layer to TCP or UDP: the headers Wireshark shows, read with struct.

The link layers of the captures one meets (LINKTYPE_ values of
https://www.tcpdump.org/linktypes.html): Ethernet with 802.1Q/802.1ad VLAN
tags, BSD/macOS loopback (NULL and LOOP), Linux cooked captures v1 and v2
(`tcpdump -i any`), raw IP (101, and 12 and 14 where BSDs wrote their
DLT_RAW), and LINKTYPE_IPV4/IPV6. Then IPv4 (RFC 791) or IPv6 (RFC 8200,
extension headers skipped), then TCP (RFC 9293) or UDP (RFC 768).

This is the per-packet hot path of the analyzer: headers are read with
struct.unpack_from over the frame (a memoryview into the reader's buffer),
and decode() returns where the payload lies in the frame, never a copy of it.
What is not dissected is said, not dropped: decode() returns a phrase naming
it ("of link type 147 (USER0)"), which the analyzer counts.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

# TCP flags (RFC 9293 section 3.1), as tshark's tcp.flags numbers them.
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP, UDP = 6, 17

# Link types (LINKTYPE_ values as pcap and pcapng files carry them) and their tcpdump names.
ETHERNET, NULL, LOOP, LINUX_SLL, LINUX_SLL2, RAW, IPV4, IPV6 = 1, 0, 108, 113, 276, 101, 228, 229
RAW_BSD, RAW_OPENBSD = 12, 14           # DLT_RAW as some BSDs numbered it; Wireshark reads both as raw IP
LINK_TYPE_NAMES = {
    0: "NULL", 1: "ETHERNET", 6: "IEEE802_5", 8: "SLIP", 9: "PPP", 10: "FDDI", 12: "RAW", 14: "RAW",
    50: "PPP_HDLC", 51: "PPP_ETHER", 101: "RAW", 104: "C_HDLC", 105: "IEEE802_11", 108: "LOOP", 113: "LINUX_SLL",
    119: "PRISM_HEADER", 127: "IEEE802_11_RADIOTAP", 138: "APPLE_IP_OVER_IEEE1394", 143: "DOCSIS",
    **{147 + n: f"USER{n}" for n in range(16)},
    163: "IEEE802_11_AVS", 187: "BLUETOOTH_HCI_H4", 189: "USB_LINUX", 192: "PPI", 195: "IEEE802_15_4_WITHFCS",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR", 215: "IEEE802_15_4_NONASK_PHY", 220: "USB_LINUX_MMAPPED", 227: "CAN_SOCKETCAN",
    228: "IPV4", 229: "IPV6", 231: "DBUS", 239: "NFLOG", 240: "NETANALYZER", 249: "USBPCAP", 252: "WIRESHARK_UPPER_PDU",
    263: "IPOIB", 264: "MPEG_2_TS", 270: "NETLINK", 274: "EBHSCR", 276: "LINUX_SLL2",
}
DECODED = frozenset({ETHERNET, NULL, LOOP, LINUX_SLL, LINUX_SLL2, RAW, RAW_BSD, RAW_OPENBSD, IPV4, IPV6})

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100})          # 802.1Q, 802.1ad (QinQ) and its pre-standard tag
# Address families in a NULL/LOOP header: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD),
# 28 (FreeBSD, DragonFly), 30 (macOS, iOS) or 10 (Linux), as Wireshark's packet-null.c reads them.
AF_INET6_VALUES = frozenset({10, 24, 28, 30})

# IPv6 extension headers that may precede TCP/UDP (RFC 8200 section 4, RFC 7045): hop-by-hop, routing,
# destination options, mobility, HIP, shim6 and the experimental 253/254 share one layout (next header,
# length in 8-octet units not counting the first); the fragment header (44) is 8 octets; AH (51) counts
# 4-octet units, minus 2.
IPV6_OPTIONS = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
IPV6_FRAGMENT, IPV6_AH, IPV6_NONE = 44, 51, 59

# Ethertypes and IP protocols that carry IP inside something this module does not open.
CARRIERS = {0x8847: "carried in MPLS", 0x8848: "carried in MPLS", 0x8864: "carried in PPPoE sessions"}
TUNNELS = {4: "carrying IPv4 in IP (a tunnel)", 41: "carrying IPv6 in IP (a tunnel)", 47: "carrying GRE (a tunnel)"}
FRAGMENTS_V4 = "that are IPv4 fragments (IP reassembly is not done)"
FRAGMENTS_V6 = "that are IPv6 fragments (IP reassembly is not done)"
CUT_HEADERS = "cut short by the capture before their TCP or UDP header ended"


def link_type_name(linktype: int) -> str:
    """'147 (USER0)': the number and its tcpdump LINKTYPE_ name, as a sentence names a link type."""
    name = LINK_TYPE_NAMES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)


def undecoded_link(linktype: int) -> str:
    """What the analyzer says of packets of a link type it does not dissect."""
    return f"of link type {link_type_name(linktype)}"


class Segment(NamedTuple):
    """Where one TCP or UDP segment lies in its frame, and what its headers say.

    The payload is frame[start:end]: only the bytes the capture holds. ``missing`` counts
    the payload bytes the IP header says were sent and the capture does not hold (a frame
    cut by the snaplen): the payload really was end - start + missing bytes (tcp.len).
    """

    src_mac: str                # "02:42:0a:4d:00:0a"; "" where the link layer has none (the sender's
    dst_mac: str                # address for a Linux cooked capture)
    src: str                    # as socket.inet_ntop writes it, which is how tshark shows it
    dst: str
    proto: int                  # TCP or UDP
    sport: int
    dport: int
    flags: int                  # tcp.flags (12 bits); 0 for UDP
    seq: int                    # tcp.seq_raw; 0 for UDP
    start: int
    end: int
    missing: int


_U16 = struct.Struct("!H").unpack_from
_IPV4 = struct.Struct("!BxHxxHxB").unpack_from               # version/IHL, total length, fragment field, protocol
_IPV6 = struct.Struct("!IHB").unpack_from                     # version/class/label, payload length, next header
_TCP = struct.Struct("!HHIxxxxH").unpack_from                 # ports, sequence number, data offset and flags
_UDP = struct.Struct("!HHH").unpack_from                      # ports, length
_SLL2 = struct.Struct("!H").unpack_from
_NULL_LE = struct.Struct("<I").unpack_from
_NULL_BE = struct.Struct(">I").unpack_from

_IP_VERSIONS = {4: ETH_IPV4, 6: ETH_IPV6}
_addresses: dict[bytes, str] = {}


def _address(raw: bytes) -> str:
    """An address as tshark shows it (RFC 5952 for IPv6), cached: a capture has few of them."""
    text = _addresses.get(raw)
    if text is None:
        text = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
        if len(_addresses) < 65536:
            _addresses[raw] = text
    return text


_macs: dict[bytes, str] = {}


def _mac(raw: memoryview) -> str:
    """A MAC address as tshark shows it ("02:42:0a:4d:00:0a"), cached like _address: one string per
    address, not one per packet (memory held by Packet objects, and time)."""
    key = bytes(raw)
    text = _macs.get(key)
    if text is None:
        text = key.hex(":")
        if len(_macs) < 65536:
            _macs[key] = text
    return text


def _family(value: int) -> int:
    """The ethertype for a NULL/LOOP header's value: an address family, or (old captures) an ethertype."""
    if value == 2:
        return ETH_IPV4
    if value in AF_INET6_VALUES:
        return ETH_IPV6
    return value if value > 1500 else 0


def decode(linktype: int, frame: memoryview) -> Segment | str | None:
    """The TCP or UDP segment in FRAME, read as LINKTYPE; None if it holds none (ARP, ICMP, ...).

    Returns a phrase instead (see undecoded_link, CARRIERS, TUNNELS, FRAGMENTS_V4,
    CUT_HEADERS) for what may carry TCP or UDP and is not dissected: a link type not
    listed in DECODED, IP inside MPLS, PPPoE or a tunnel, an IP fragment, a frame cut
    before its transport header ended.
    """
    size = len(frame)
    src_mac = dst_mac = ""
    if linktype == ETHERNET:
        if size < 14:
            return None
        kind, offset = _U16(frame, 12)[0], 14
        dst_mac, src_mac = _mac(frame[0:6]), _mac(frame[6:12])
    elif linktype == LINUX_SLL:                 # packet type, ARPHRD type, address length, address (8), protocol
        if size < 16:
            return None
        kind, offset = _U16(frame, 14)[0], 16
        if _U16(frame, 4)[0] == 6:
            src_mac = _mac(frame[6:12])
    elif linktype == LINUX_SLL2:                # protocol, reserved, ifindex, ARPHRD, packet type, length, address
        if size < 20:
            return None
        kind, offset = _SLL2(frame, 0)[0], 20
        if frame[11] == 6:
            src_mac = _mac(frame[12:18])
    elif linktype in (RAW, RAW_BSD, RAW_OPENBSD, IPV4, IPV6):
        if size < 1:
            return None
        kind, offset = _IP_VERSIONS.get(frame[0] >> 4, 0), 0
    elif linktype == NULL:                      # the family in the byte order of the machine that captured it
        if size < 4:
            return None
        value = _NULL_LE(frame, 0)[0]
        kind, offset = _family(value if value <= 0xFFFF else _NULL_BE(frame, 0)[0]), 4
    elif linktype == LOOP:                      # the family, always big-endian
        if size < 4:
            return None
        kind, offset = _family(_NULL_BE(frame, 0)[0]), 4
    else:
        return undecoded_link(linktype)
    while kind in VLAN_TAGS and offset + 4 <= size:     # 802.1Q tags, stacked or not (Ethernet, cooked)
        kind, offset = _U16(frame, offset + 2)[0], offset + 4
    if kind == ETH_IPV4:
        return _ipv4(frame, offset, src_mac, dst_mac)
    if kind == ETH_IPV6:
        return _ipv6(frame, offset, src_mac, dst_mac)
    return CARRIERS.get(kind)


def _ipv4(frame: memoryview, offset: int, src_mac: str, dst_mac: str) -> Segment | str | None:
    """RFC 791: the header's length and total length bound the payload (Ethernet pads short frames)."""
    size = len(frame)
    if offset + 20 > size:
        return CUT_HEADERS if size > offset else None
    version_ihl, total, fragment, proto = _IPV4(frame, offset)
    ihl = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or ihl < 20:
        return None
    if proto != TCP and proto != UDP:
        return TUNNELS.get(proto)
    if fragment & 0x3FFF:                       # more fragments, or a fragment offset: part of a datagram
        return FRAGMENTS_V4
    # A total length of 0 is what TSO/GSO hands tcpdump before the NIC splits it (Wireshark's ip.tso_support).
    end = offset + total if total else size
    if total and total < ihl:
        return None
    return _transport(frame, offset + ihl, end, proto, bytes(frame[offset + 12:offset + 16]),
                      bytes(frame[offset + 16:offset + 20]), src_mac, dst_mac)


def _ipv6(frame: memoryview, offset: int, src_mac: str, dst_mac: str) -> Segment | str | None:
    """RFC 8200: extension headers are skipped to the upper-layer header; a fragment is counted, not read."""
    size = len(frame)
    if offset + 40 > size:
        return CUT_HEADERS if size > offset else None
    first, length, proto = _IPV6(frame, offset)
    if first >> 28 != 6:
        return None
    pos = offset + 40
    end = pos + length if length else size      # 0: a jumbogram (RFC 2675), or TSO as for IPv4
    while proto != TCP and proto != UDP:
        if proto in IPV6_OPTIONS or proto == IPV6_AH:
            if pos + 2 > size:
                return CUT_HEADERS
            proto, units = frame[pos], frame[pos + 1]
            pos += (units + 2) * 4 if proto == IPV6_AH else (units + 1) * 8
        elif proto == IPV6_FRAGMENT:
            if pos + 8 > size:
                return CUT_HEADERS
            if _U16(frame, pos + 2)[0] & 0xFFF9:        # a fragment offset or more fragments: not whole
                return FRAGMENTS_V6
            proto, pos = frame[pos], pos + 8            # an atomic fragment (RFC 6946) is the whole datagram
        else:
            return TUNNELS.get(proto)                   # None for no next header (59), ESP, ICMPv6, ...
    return _transport(frame, pos, end, proto, bytes(frame[offset + 8:offset + 24]),
                      bytes(frame[offset + 24:offset + 40]), src_mac, dst_mac)


def _transport(frame: memoryview, pos: int, end: int, proto: int, src: bytes, dst: bytes, src_mac: str,
               dst_mac: str) -> Segment | str | None:
    """TCP (RFC 9293 section 3.1) or UDP (RFC 768) at POS, its IP datagram ending at END (declared)."""
    size = len(frame)
    if proto == TCP:
        if pos + 20 > size:
            return CUT_HEADERS if size < end else None
        sport, dport, seq, offset_flags = _TCP(frame, pos)
        header = (offset_flags >> 12) * 4
        if header < 20:
            return None                                 # a bogus data offset: tshark does not read it either
        flags = offset_flags & 0x0FFF
    else:
        if pos + 8 > size:
            return CUT_HEADERS if size < end else None
        sport, dport, length = _UDP(frame, pos)
        header, flags, seq = 8, 0, 0
        if 8 <= length <= end - pos:
            end = pos + length                          # udp.length bounds it, within the IP datagram
    start = pos + header
    kept = max(start, min(end, size))                   # Ethernet padding after END is not payload
    if proto != TCP and kept == end:
        inner = _tunnelled(frame, start, end, sport, dport)
        if inner is not None:
            return inner
    return Segment(src_mac, dst_mac, _address(src), _address(dst), proto, sport, dport, flags, seq, start, kept,
                   max(0, end - kept))


VXLAN, GENEVE, GTP_U = 4789, 6081, 2152     # IANA's UDP ports (RFC 7348, RFC 8926, 3GPP TS 29.281)


def _tunnelled(frame: memoryview, start: int, end: int, sport: int, dport: int) -> Segment | str | None:
    """The segment inside a UDP tunnel's payload frame[start:end], offsets in FRAME; None if it is not one.

    VXLAN (RFC 7348 section 5: 8 bytes, flag I set, then an Ethernet frame), Geneve (RFC 8926 section 3:
    8 bytes and options, protocol 0x6558 for Ethernet or an ethertype for IP) and GTP-U (TS 29.281: flags,
    type 255 G-PDU, length, TEID, optional fields, then an IP packet), as tshark reads them on their ports.
    """
    size = end - start
    if dport == VXLAN and size >= 8 + 14 and frame[start] & 0x08:
        link, at = ETHERNET, start + 8
    elif dport == GENEVE and size >= 8 and frame[start] >> 6 == 0:
        at = start + 8 + (frame[start] & 0x3F) * 4
        protocol = _U16(frame, start + 2)[0]
        link = ETHERNET if protocol == 0x6558 else RAW if protocol in (ETH_IPV4, ETH_IPV6) else -1
        if link < 0 or at >= end:
            return None
    elif GTP_U in (sport, dport) and size >= 8 and frame[start] >> 5 == 1 and frame[start + 1] == 255:
        at, link = start + 8, RAW
        if frame[start] & 0x07:
            at += 4                 # sequence number (2), N-PDU number (1), next extension header type (1)
            kind = frame[at - 1] if frame[start] & 0x04 else 0
            while kind:             # each extension: its length in 4-byte units, ..., the next one's type
                if at >= end or not frame[at] or at + frame[at] * 4 > end:
                    return None
                at += frame[at] * 4
                kind = frame[at - 1]
        if at >= end:
            return None
    else:
        return None
    inner = decode(link, frame[at:end])
    if isinstance(inner, Segment):
        return inner._replace(start=inner.start + at, end=inner.end + at)
    return inner
