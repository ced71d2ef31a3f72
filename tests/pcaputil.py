"""Reading the lab's captures in tests, with dpkt (a real pcap dissector).

The lab's own analyzer arrives with the "Show the wire" issue; these tests
only need to count packets, so they read the pcap directly.
"""

from __future__ import annotations

import io
import socket
from dataclasses import dataclass

import dpkt


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    proto: str            # "tcp", "udp", "icmp", or "other"
    sport: int
    dport: int
    flags: int            # TCP flags, 0 otherwise
    ip_id: int
    payload: bytes
    dns: dpkt.dns.DNS | None = None

    @property
    def syn(self) -> bool:
        return self.proto == "tcp" and bool(self.flags & dpkt.tcp.TH_SYN) and not self.flags & dpkt.tcp.TH_ACK

    @property
    def syn_ack(self) -> bool:
        return self.proto == "tcp" and bool(self.flags & dpkt.tcp.TH_SYN) and bool(self.flags & dpkt.tcp.TH_ACK)


def read(data: bytes) -> list[Packet]:
    """Every IPv4 packet in a pcap (ARP and IPv6 are skipped)."""
    out = []
    for _ts, frame in dpkt.pcap.Reader(io.BytesIO(data)):
        eth = dpkt.ethernet.Ethernet(frame)
        ip = eth.data
        if not isinstance(ip, dpkt.ip.IP):
            continue
        src, dst = socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst)
        seg = ip.data
        if isinstance(seg, dpkt.tcp.TCP):
            out.append(Packet(src, dst, "tcp", seg.sport, seg.dport, seg.flags, ip.id, bytes(seg.data)))
        elif isinstance(seg, dpkt.udp.UDP):
            dns = None
            if 53 in (seg.sport, seg.dport):
                try:
                    dns = dpkt.dns.DNS(bytes(seg.data))
                except (dpkt.UnpackError, IndexError):
                    dns = None
            out.append(Packet(src, dst, "udp", seg.sport, seg.dport, 0, ip.id, bytes(seg.data), dns))
        else:
            out.append(Packet(src, dst, "icmp" if isinstance(seg, dpkt.icmp.ICMP) else "other", 0, 0, 0,
                              ip.id, b""))
    return out


def dns_queries(packets: list[Packet], name: str) -> list[Packet]:
    return [p for p in packets if p.dns is not None and p.dns.qr == dpkt.dns.DNS_Q
            and any(q.name == name for q in p.dns.qd)]


def dns_answers(packets: list[Packet], name: str) -> list[Packet]:
    return [p for p in packets if p.dns is not None and p.dns.qr == dpkt.dns.DNS_R
            and any(q.name == name for q in p.dns.qd)]


def answer_addresses(packet: Packet) -> list[str]:
    assert packet.dns is not None
    return [socket.inet_ntoa(rr.ip) for rr in packet.dns.an if rr.type == dpkt.dns.DNS_A]
