"""What the wire saw, in order: one event per packet or TLS record, between the lanes it really crossed.

The report draws these events and writes them beside the page (index.json),
so a test can hold each one against tshark's view of the same frame.

Who sent a frame is read from the frame itself, not assumed from its IP
addresses. The wire captures on its one interface: with `-Q in` (the normal
runs) it records what arrives; with `-Q inout` (the attacks) also what it
sends. A frame the wire sends carries the wire's own MAC as its source:

- if it is the copy of a frame that arrived just before (same addresses,
  ports, sequence number, flags and length), the wire forwarded that frame:
  one event, from the sender's lane to the receiver's, across the wire;
- otherwise the wire made it itself (the interceptor's answer, a forged DNS
  reply, even when its IP source says "server" or "dns"): an event from the
  wire's lane.

In such a capture a frame that arrived and was never sent on stopped at the
wire (it was intercepted): its arrow ends at the wire. In a `-Q in` capture
nothing is sent by the wire, and the lab's routes forward every frame.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .tls.analyzer import Observation, Packet
from .tls.constants import ALERT, HANDSHAKE, alert_name, handshake_name

if TYPE_CHECKING:
    from .lab import Lab

LANES = ("client", "wire", "proxy", "server", "dns")   # the wire in the middle: arrows cross it or turn there
WIRE = "wire"
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10


@dataclass(frozen=True)
class Lanes:
    """Which address is which of the lab's services, and the wire's MAC (None: not known)."""

    addresses: dict[str, str] = field(default_factory=dict)      # service -> IPv4 address
    wire_mac: str | None = None

    @classmethod
    def of(cls, lab: Lab) -> Lanes:
        """The running lab's lanes: its four addresses and the wire container's MAC."""
        return cls({service: lab.address(service) for service in LANES}, lab.mac("wire"))

    def lane(self, ip: str) -> str:
        """The lane of an address; one outside the lab's four can only have been the wire's doing."""
        return next((lane for lane, address in self.addresses.items() if address == ip), WIRE)


@dataclass(frozen=True)
class Event:
    """One arrow: a packet (DNS message, TCP control, clear TCP data) or a TLS record.

    ``frame`` is the capture's frame number (1-based, tshark's frame.number)
    of the packet, or for a record the packet that carried its last byte;
    ``time`` is seconds since the first frame; ``size`` is the UDP/TCP payload
    or the TLS record's length in bytes; ``kind`` is "enc" (encrypted record),
    "clear" or "control"; ``note`` is what an encrypted record carried, from
    the lab's key log ("" where unknown); ``dns_name`` the question of a DNS
    message. ``forwarded`` is True when the wire
    passed the packet on, False when the wire sent it or took it.
    """

    frame: int
    time: float
    src: str
    dst: str
    from_lane: str
    to_lane: str
    label: str
    size: int
    kind: str
    flow: str
    note: str = ""
    forwarded: bool = True
    dns_name: str = ""      # the question of a DNS message ("" for anything else)

    def to_dict(self) -> dict[str, object]:
        return {"frame": self.frame, "time": round(self.time, 6), "src": self.src, "dst": self.dst,
                "from": self.from_lane, "to": self.to_lane, "label": self.label, "size": self.size,
                "kind": self.kind, "flow": self.flow, "note": self.note, "forwarded": self.forwarded,
                "dns_name": self.dns_name}


@dataclass(frozen=True)
class _Hop:
    """Where one frame went: its lanes, and whether the wire forwarded it."""

    from_lane: str
    to_lane: str
    forwarded: bool
    copy: bool          # the wire's outgoing copy of a forwarded frame: not an event of its own


def _key(p: Packet) -> tuple[object, ...]:
    return (p.src, p.dst, p.proto, p.sport, p.dport, p.seq, p.flags, p.payload_len)


def hops(packets: list[Packet], lanes: Lanes) -> dict[int, _Hop]:
    """Each frame's true path (see the module's docstring), keyed by frame number."""
    wire_mac = lanes.wire_mac
    sent_by_wire = wire_mac is not None and any(p.src_mac == wire_mac for p in packets)
    waiting: dict[tuple[object, ...], list[int]] = {}        # arrived, not yet seen going out
    out: dict[int, _Hop] = {}
    forwarded: set[int] = set()
    for p in packets:
        if sent_by_wire and p.src_mac == wire_mac:
            arrived = waiting.get(_key(p))
            if arrived:
                forwarded.add(arrived.pop(0))
                out[p.frame] = _Hop(WIRE, lanes.lane(p.dst), True, True)
            else:
                out[p.frame] = _Hop(WIRE, lanes.lane(p.dst), False, False)
            continue
        waiting.setdefault(_key(p), []).append(p.frame)
        out[p.frame] = _Hop(lanes.lane(p.src), lanes.lane(p.dst), True, False)
    if sent_by_wire:
        for p in packets:
            hop = out[p.frame]
            if not hop.copy and hop.from_lane != WIRE and p.frame not in forwarded:
                out[p.frame] = _Hop(hop.from_lane, WIRE, False, False)   # it stopped at the wire
    return out


def _flags(flags: int) -> str:
    names = [n for bit, n in ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST")) if flags & bit]
    if flags & ACK and names:
        names.append("ACK")
    return "-".join(names)


def _dns(obs: Observation, p: Packet) -> tuple[str, str]:
    """The label of a DNS packet, and its question's name ("" if it does not parse as DNS)."""
    match = next((d for d in obs.dns if abs(d.time - p.time) < 1e-6 and d.src == p.src and d.dst == p.dst), None)
    if match is None:
        return "DNS", ""
    if match.response:
        return f"DNS answer {match.qtype} {match.name} → {', '.join(match.answers) or 'none'}", match.name
    return f"DNS query {match.qtype} {match.name}", match.name


def _first_line(payload: bytes, width: int = 48) -> str:
    """The first line of a clear TCP payload, cut at a word (never mid-word) to about WIDTH characters."""
    line = payload.split(b"\r\n", 1)[0].decode("latin-1")
    return line if len(line) <= width else textwrap.shorten(line, width, placeholder=" …")


def events(obs: Observation, lanes: Lanes, notes: dict[tuple[str, int], str] | None = None) -> list[Event]:
    """Every DNS message, TCP control packet, clear TCP segment and TLS record, once each, in capture order.

    Pure ACKs are left out (they carry nothing an observer needs here); TLS
    payload is shown record by record, at the frame that completed each
    record. A FIN or RST that rides on a data segment is an event of its own,
    after that segment's data.
    """
    notes = notes or {}
    path = hops(obs.packets, lanes)
    by_frame = {p.frame: p for p in obs.packets}
    tls_flows: set[tuple[str, int, str, int]] = set()
    for conn in obs.tls:
        f = conn.flow
        tls_flows |= {(f.client, f.client_port, f.server, f.server_port),
                      (f.server, f.server_port, f.client, f.client_port)}
    labels = {(f.client, f.client_port, f.server, f.server_port): f.label for f in obs.flows}
    labels.update({(f.server, f.server_port, f.client, f.client_port): f.label for f in obs.flows})
    out: list[tuple[int, int, Event]] = []          # (frame, rank within the frame, event)

    def add(p: Packet, label: str, size: int, kind: str, note: str = "", rank: int = 1, name: str = "") -> None:
        hop = path[p.frame]
        out.append((p.frame, rank, Event(p.frame, p.time, p.src, p.dst, hop.from_lane, hop.to_lane, label, size,
                                         kind, labels.get((p.src, p.sport, p.dst, p.dport), ""), note,
                                         hop.forwarded, name)))

    for p in obs.packets:
        if path[p.frame].copy:
            continue
        if p.proto == "udp":
            label, name = _dns(obs, p) if 53 in (p.sport, p.dport) else (f"UDP :{p.sport}→:{p.dport}", "")
            add(p, label, p.payload_len, "clear", name=name)
            continue
        control = _flags(p.flags)
        if p.payload_len and (p.src, p.sport, p.dst, p.dport) not in tls_flows:
            add(p, f"TCP data: {_first_line(p.payload)}", p.payload_len, "clear")
        if control:
            add(p, f"TCP {control} :{p.dport}", 0, "control", rank=2 if p.payload_len else 0)
    for conn in obs.tls:
        for r, encrypted in zip(conn.records, conn.encrypted_records()):
            label = r.type_name
            if not encrypted and r.content_type == HANDSHAKE and r.fragment:
                label = handshake_name(r.fragment[0])
            elif not encrypted and r.content_type == ALERT and len(r.fragment) >= 2:
                label = f"alert {alert_name(r.fragment[1])}"
            elif encrypted:
                label = f"{r.type_name} (encrypted)"
            carrier = by_frame.get(r.frame)
            if carrier is None:
                continue
            add(carrier, label, r.length, "enc" if encrypted else "clear", notes.get((r.direction, r.offset), ""))
    out.sort(key=lambda item: (item[0], item[1]))     # stable: records of one frame keep their order
    return [event for _, _, event in out]


def infer_lanes(obs: Observation) -> Lanes:
    """The lanes when the lab's are not known: read from the capture (the wire at .254 of the client's /24)."""
    found: dict[str, str] = {}
    query = next((d for d in obs.dns if not d.response), None)
    if query:
        found["client"], found["dns"] = query.src, query.dst
    tcp = next((f for f in obs.flows if f.proto == "tcp"), None)
    if tcp:
        found.setdefault("client", tcp.client)
        found["server"] = tcp.server
    if "client" in found:
        found["wire"] = found["client"].rsplit(".", 1)[0] + ".254"   # the lab's convention: .254
    return Lanes(found)
