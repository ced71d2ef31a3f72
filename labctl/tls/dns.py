"""DNS messages (RFC 1035) as the wire shows them: who asked for which name, and what came back."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import dpkt


@dataclass(frozen=True)
class DnsMessage:
    time: float
    src: str
    dst: str
    id: int
    name: str
    qtype: str
    response: bool
    rcode: int
    authoritative: bool
    answers: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"time": round(self.time, 6), "src": self.src, "dst": self.dst, "id": self.id, "name": self.name,
                "qtype": self.qtype, "response": self.response, "rcode": self.rcode,
                "authoritative": self.authoritative, "answers": list(self.answers)}



def parse_dns(payload: bytes, t: float, src: str, dst: str) -> DnsMessage | None:
    try:
        msg = dpkt.dns.DNS(payload)
    except (dpkt.UnpackError, struct.error, IndexError):
        return None
    if not msg.qd:
        return None
    q = msg.qd[0]
    answers = []
    for rr in msg.an:
        if rr.type == dpkt.dns.DNS_A:
            answers.append(socket.inet_ntoa(rr.ip))
        elif rr.type == dpkt.dns.DNS_CNAME:
            answers.append(rr.cname)
    qtypes = {1: "A", 28: "AAAA", 5: "CNAME", 2: "NS", 6: "SOA", 15: "MX", 16: "TXT", 65: "HTTPS"}
    return DnsMessage(t, src, dst, msg.id, q.name, qtypes.get(q.type, str(q.type)), bool(msg.qr == dpkt.dns.DNS_R),
                      msg.rcode, bool(msg.aa), tuple(answers))
