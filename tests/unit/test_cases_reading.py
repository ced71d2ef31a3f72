"""Issue #13, reading: link layers, IP versions, pcapng interfaces, files, snaplen, DNS, streaming.

Every expected value is tshark 4.0's on the same file (CASES.md, sections "Link layer and IP version",
"DNS", "Files" and "Reading"), held as a constant here and, where tshark is installed, asked of it
live as well. The inputs are in tests/captures; the rewrapped ones are made by
tests/captures/make_reading.py, and variants the tests need only for themselves are made here.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl import render
from labctl.tls import analyzer, dns, packets
from labctl.tls.analyzer import CaptureFormatError, analyze, analyze_file
from tests import tshark

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
V4, V6 = "127.0.0.1", "2001:db8::7f00:1"
FUZZ = settings(max_examples=500, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def have_tshark() -> bool:
    return shutil.which("tshark") is not None


# -- what tshark says, field by field ------------------------------------------------------------

def tshark_packets(pcap: Path) -> list[tuple[int, str, str, str, int, int, int, int, int, str]]:
    """Each TCP/UDP frame as tshark reads it: (frame, src, dst, proto, sport, dport, tcp.len or udp
    payload length, frame.cap_len, frame.len, source MAC: eth.src or sll.src.eth)."""
    rows = tshark.fields(pcap, "tcp or udp", "frame.number", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
                         "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.len", "udp.length",
                         "frame.cap_len", "frame.len", "eth.src", "sll.src.eth")
    out = []
    for number, src4, src6, dst4, dst6, tsport, tdport, usport, udport, tlen, ulen, cap, wire, eth, sll in rows:
        proto = "tcp" if tsport else "udp"
        out.append((int(number), src4 or src6, dst4 or dst6, proto, int(tsport or usport), int(tdport or udport),
                    int(tlen) if proto == "tcp" else int(ulen) - 8, int(cap), int(wire), eth or sll))
    return out


def ours_packets(obs: analyzer.Observation) -> list[tuple[int, str, str, str, int, int, int, int, int, str]]:
    return [(p.frame, p.src, p.dst, p.proto, p.sport, p.dport, p.payload_len, p.length, p.wire_length, p.src_mac)
            for p in obs.packets]


def tshark_tls_records(pcap: Path) -> dict[int, int]:
    """TLS records per TCP stream (tcp.stream: 0, 1, ... in order of first frame)."""
    out: dict[int, int] = {}
    for stream, lengths in tshark.fields(pcap, "tls.record", "tcp.stream", "tls.record.length"):
        out[int(stream)] = out.get(int(stream), 0) + len(lengths.split(","))
    return out


def tshark_dns(pcap: Path) -> list[tuple[int, int, bool, str, int, tuple[int, ...], tuple[str, ...]]]:
    """Each DNS message: (frame, id, response, name, qtype, answer types, A/AAAA/CNAME answers in order).

    tshark lists the fields of every message in a frame (DNS over TCP carries several) and of every
    section (answers, authority, additional) one after the other: each message takes its counts' worth.
    """
    rows = tshark.fields(pcap, "dns", "frame.number", "dns.id", "dns.flags.response", "dns.qry.name",
                         "dns.qry.type", "dns.count.answers", "dns.count.auth_rr", "dns.count.add_rr",
                         "dns.resp.type", "dns.a", "dns.aaaa", "dns.cname")
    out = []
    for number, ids, responses, names, qtypes, ans, auth, add, rtypes, a, aaaa, cname in rows:
        split = [(field.split(",") if field else []) for field in (rtypes, a, aaaa, cname)]
        types, values = [int(t) for t in split[0]], {1: split[1], 28: split[2], 5: split[3]}
        for i, ident in enumerate(ids.split(",")):
            counts = [int(c.split(",")[i]) for c in (ans, auth, add)]
            mine, types = types[:sum(counts)], types[sum(counts):]
            answers = []
            for kind in mine[:counts[0]]:
                if kind in values:
                    answers.append(values[kind].pop(0))
            for kind in mine[counts[0]:]:
                if kind in values:
                    values[kind].pop(0)             # an address in the authority or additional section
            out.append((int(number), int(ident, 16), responses.split(",")[i] in ("1", "True"),
                        names.split(",")[i], int(qtypes.split(",")[i]), tuple(mine[:counts[0]]), tuple(answers)))
    return out


def ours_dns(obs: analyzer.Observation) -> list[tuple[int, int, bool, str, int, tuple[int, ...], tuple[str, ...]]]:
    return [(m.frame, m.id, m.response, m.name, m.qtype_code, m.answer_types,
             tuple(a for a, t in zip(m.answers, m.answer_types) if t in (1, 28, 5))) for m in obs.dns]


def flows(obs: analyzer.Observation) -> list[tuple[str, str, dict[str, int], dict[str, int]]]:
    return [(f.label, f.proto, f.packets, f.wire_bytes) for f in obs.flows]


# -- link layers and IP versions ----------------------------------------------------------------

NSS_FLOWS = {   # tshark -z conv,tcp: frames and bytes (frame.len) each way, client -> server first
    41386: ({"c2s": 10, "s2c": 8}, {"nss_sll.pcap": (1061, 3960), "nss_ipv6.pcap": (1241, 4104),
                                    "read_null.pcap": (941, 3864), "read_loop.pcap": (1141, 4024),
                                    "read_rawip.pcap": (901, 3832), "read_vlan.pcap": (1281, 4136)}),
    41402: ({"c2s": 11, "s2c": 8}, {"nss_sll.pcap": (1139, 4371), "nss_ipv6.pcap": (1337, 4515),
                                    "read_null.pcap": (1227, 4435), "read_sll2.pcap": (1183, 4403),
                                    "read_rawip.pcap": (1183, 4403), "read_vlan.pcap": (1425, 4579)}),
}
# Which address each file's connections use, and its link type (capinfos).
LINK_CASES = {
    "nss_sll.pcap": (113, {41386: V4, 41402: V4}),
    "nss_ipv6.pcap": (1, {41386: V6, 41402: V6}),
    "read_null.pcap": (0, {41386: V4, 41402: V6}),
    "read_loop.pcap": (108, {41386: V6}),
    "read_sll2.pcap": (276, {41402: V4}),
    "read_rawip.pcap": (101, {41386: V4, 41402: V6}),
    "read_vlan.pcap": (1, {41386: V6, 41402: V6}),
}


@pytest.mark.parametrize("name", sorted(LINK_CASES))
def test_each_link_layer_gives_the_connections_tshark_sees(name):
    """Cooked v1 and v2, NULL, LOOP, raw IP, VLAN-tagged Ethernet, IPv6: each connection of the NSS
    example, with tshark's frames and bytes each way and its 15 TLS records."""
    linktype, addresses = LINK_CASES[name]
    obs = analyze_file(CAPTURES / name)
    assert obs.link_types == {linktype: obs.frames}
    expected = [(f"{analyzer.endpoint(address, port)} → {analyzer.endpoint(address, 443)} tcp", "tcp",
                 NSS_FLOWS[port][0], dict(zip(("c2s", "s2c"), NSS_FLOWS[port][1][name])))
                for port, address in addresses.items()]
    assert flows(obs) == expected
    assert [len(t.records) for t in obs.tls] == [15] * len(addresses)
    assert obs.not_dissected == {} and obs.truncated == 0
    if have_tshark():
        pcap = CAPTURES / name
        assert ours_packets(obs) == tshark_packets(pcap)
        assert sorted(tshark_tls_records(pcap).values()) == [15] * len(addresses)


def test_cooked_capture_gives_the_senders_address():
    """sll.src.eth: a cooked capture records the sender's link-layer address only."""
    obs = analyze_file(CAPTURES / "nss_sll.pcap")
    assert {(p.src_mac, p.dst_mac) for p in obs.packets} == {("02:00:00:00:00:01", "")}


def test_ipv6_addresses_are_written_as_tshark_writes_them():
    obs = analyze_file(CAPTURES / "nss_ipv6.pcap")
    assert {p.src for p in obs.packets} == {"2001:db8::7f00:1"}
    assert obs.tls[0].flow.label == "[2001:db8::7f00:1]:41386 → [2001:db8::7f00:1]:443 tcp"
    assert obs.to_dict()["flows"][0]["client"] == "2001:db8::7f00:1"


def _rewrap(tmp: Path, linktype: int, header: bytes, name: str) -> Path:
    """The IPv4 connection of nss_sll.pcap as LINKTYPE, each frame opening with HEADER."""
    with open(CAPTURES / "nss_sll.pcap", "rb") as handle:
        frames = [(ts, bytes(frame[16:])) for ts, frame in dpkt.pcap.Reader(handle)][:18]
    path = tmp / name
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=linktype)
        for ts, frame in frames:
            writer.writepkt(header + frame, ts=ts)
    return path


@pytest.mark.parametrize("linktype, header", [(12, b""), (14, b""), (228, b""), (0, struct.pack(">I", 2)),
                                               (108, struct.pack(">I", 2))])
def test_other_numbers_for_raw_ip_and_loopback(tmp_path, linktype, header):
    """DLT_RAW as BSDs numbered it (12, 14), LINKTYPE_IPV4 (228), a big-endian NULL header (a
    PowerPC Mac), LOOP carrying IPv4: tshark reads each as the same connection."""
    path = _rewrap(tmp_path, linktype, header, f"lt{linktype}.pcap")
    obs = analyze_file(path)
    assert [(f.label, f.packets) for f in obs.flows] == [("127.0.0.1:41386 → 127.0.0.1:443 tcp",
                                                          {"c2s": 10, "s2c": 8})]
    assert len(obs.tls[0].records) == 15
    if have_tshark():
        assert ours_packets(obs) == tshark_packets(path)


def test_ipv6_extension_headers_are_skipped(tmp_path):
    """Hop-by-hop options, destination options and an atomic fragment header (RFC 6946) before TCP:
    the same connection and records; tshark agrees."""
    with open(CAPTURES / "nss_ipv6.pcap", "rb") as handle:
        frames = [(ts, bytes(frame)) for ts, frame in dpkt.pcap.Reader(handle)][:18]
    path = tmp_path / "ext.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for ts, frame in frames:
            ip = frame[14:54]
            # 0 hop-by-hop -> 60 destination options -> 44 fragment (offset 0, no more) -> 6 TCP
            chain = bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([44, 0, 1, 4, 0, 0, 0, 0]) + \
                bytes([6, 0, 0, 0, 0, 0, 0, 1])
            length = struct.unpack_from("!H", ip, 4)[0] + len(chain)
            header = ip[:4] + struct.pack("!HB", length, 0) + ip[7:]
            writer.writepkt(frame[:14] + header + chain + frame[54:], ts=ts)
    obs = analyze_file(path)
    assert [(f.label, f.packets) for f in obs.flows] == [
        ("[2001:db8::7f00:1]:41386 → [2001:db8::7f00:1]:443 tcp", {"c2s": 10, "s2c": 8})]
    assert len(obs.tls[0].records) == 15
    if have_tshark():
        assert ours_packets(obs) == tshark_packets(path)
        assert list(tshark_tls_records(path).values()) == [15]


def test_an_ipv4_total_length_of_0_is_read_as_tso_hands_it_to_tcpdump(tmp_path):
    """A TSO/GSO capture's IPv4 total length is 0: the frame's end bounds the datagram, as tshark's
    ip.tso_support (on by default) reads it."""
    with open(CAPTURES / "nss_sll.pcap", "rb") as handle:
        frames = [(ts, bytes(frame)) for ts, frame in dpkt.pcap.Reader(handle)][:18]
    path = tmp_path / "tso.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=113)
        for ts, frame in frames:
            writer.writepkt(frame[:18] + b"\0\0" + frame[20:], ts=ts)
    obs = analyze_file(path)
    assert [p.payload_len for p in obs.packets][:8] == [0, 0, 0, 188, 0, 1329, 0, 93]
    assert len(obs.tls[0].records) == 15 and obs.truncated == 0
    if have_tshark():
        assert ours_packets(obs) == tshark_packets(path)


def test_ip_in_a_tunnel_or_mpls_is_named_not_dropped(tmp_path):
    """IPv6 in IPv4 (6in4, protocol 41) and IPv4 in MPLS: named with their counts."""
    with open(CAPTURES / "nss_ipv6.pcap", "rb") as handle:
        frames = [(ts, bytes(frame)) for ts, frame in dpkt.pcap.Reader(handle)][:3]
    path = tmp_path / "tunnels.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for ts, frame in frames:
            inner = frame[14:]
            outer = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(inner), 1, 0, 64, 41, 0, bytes([192, 0, 2, 1]),
                                bytes([192, 0, 2, 2]))
            writer.writepkt(frame[:12] + b"\x08\x00" + outer + inner, ts=ts)
            writer.writepkt(frame[:12] + b"\x88\x47" + struct.pack("!I", (16 << 12) | 0x100 | 64) + inner, ts=ts)
    obs = analyze_file(path)
    assert obs.not_dissected == {"carrying IPv6 in IP (a tunnel)": 3, "carried in MPLS": 3}
    text = render.observation_text("tunnels.pcap", obs)
    assert "3 packets carrying IPv6 in IP (a tunnel): not dissected" in text
    assert "3 packets carried in MPLS: not dissected" in text
    if have_tshark():
        assert len(tshark.fields(path, "tcp", "frame.number")) == 6        # tshark opens both


def test_ip_fragments_are_named_not_dropped(tmp_path):
    """A UDP datagram in two IPv4 fragments and one in two IPv6 fragments: not reassembled here, and
    said so (tshark reassembles them: 2 datagrams of 4 fragments)."""
    payload = bytes(range(256)) * 8
    udp = struct.pack("!HHHH", 5000, 5001, 8 + len(payload), 0) + payload
    src4, dst4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    src6, dst6 = bytes(15) + b"\x01", bytes(15) + b"\x02"

    def v4(offset: int, more: bool, data: bytes) -> bytes:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), 7, (more << 13) | offset // 8, 64, 17, 0,
                             src4, dst4)
        return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + header + data

    def v6(offset: int, more: bool, data: bytes) -> bytes:
        fragment = struct.pack("!BBHI", 17, 0, offset | more, 99)
        header = struct.pack("!IHBB16s16s", 0x60000000, 8 + len(data), 44, 64, src6, dst6)
        return b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd" + header + fragment + data

    path = tmp_path / "fragments.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for i, frame in enumerate([v4(0, True, udp[:1000]), v4(1000, False, udp[1000:]),
                                   v6(0, True, udp[:1000]), v6(1000, False, udp[1000:])]):
            writer.writepkt(frame, ts=1.0 + i / 10)
    obs = analyze_file(path)
    assert obs.not_dissected == {packets.FRAGMENTS_V4: 2, packets.FRAGMENTS_V6: 2}
    assert obs.flows == []
    text = render.observation_text("fragments.pcap", obs)
    assert "2 packets that are IPv4 fragments (IP reassembly is not done): not dissected" in text
    assert "no TLS in this capture" not in text
    if have_tshark():
        assert len(tshark.fields(path, "ip.fragment or ipv6.fragment", "frame.number")) == 2   # reassembled in 2
        assert len(tshark.fields(path, "udp", "frame.number")) == 2


def test_a_pcapng_with_interfaces_of_four_link_types(tmp_path):
    """read_mixed.pcapng (mergecap): LOOP, cooked v2, Ethernet and USER0 interfaces. Each packet is read
    by its own interface's link type; USER0's are named, with their count, never dropped."""
    pcap = CAPTURES / "read_mixed.pcapng"
    obs = analyze_file(pcap)
    assert obs.frames == 41
    assert obs.link_types == {1: 2, 108: 18, 276: 19, 147: 2}
    assert flows(obs) == [
        ("192.168.1.99:62978 → 192.168.1.1:53 udp", "udp", {"c2s": 1, "s2c": 1}, {"c2s": 97, "s2c": 176}),
        ("[2001:db8::7f00:1]:41386 → [2001:db8::7f00:1]:443 tcp", "tcp", {"c2s": 10, "s2c": 8},
         {"c2s": 1141, "s2c": 4024}),
        ("127.0.0.1:41402 → 127.0.0.1:443 tcp", "tcp", {"c2s": 11, "s2c": 8}, {"c2s": 1183, "s2c": 4403})]
    assert [len(t.records) for t in obs.tls] == [15, 15]
    assert len(obs.dns) == 2
    assert obs.not_dissected == {"of link type 147 (USER0)": 2}
    text = render.observation_text("read_mixed.pcapng", obs)
    assert "2 packets of link type 147 (USER0): not dissected" in text.splitlines()
    doc = obs.to_dict()
    assert doc["not_dissected"] == [{"packets": 2, "what": "of link type 147 (USER0)"}]
    assert {"link_type": 147, "name": "USER0", "packets": 2} in doc["link_types"]
    if have_tshark():
        assert ours_packets(obs) == tshark_packets(pcap)
        encaps = tshark.fields(pcap, "frame", "frame.interface_id", "frame.encap_type")
        assert sorted({(int(i), int(e)) for i, e in encaps}) == [(0, 174), (1, 210), (2, 1), (3, 45)]
        assert sorted(tshark_tls_records(pcap).values()) == [15, 15]


def test_a_capture_of_a_link_type_not_dissected_is_not_said_to_hold_no_tls(tmp_path):
    path = tmp_path / "user0.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=147)
        for i in range(12):
            writer.writepkt(b"\x16\x03\x01" + bytes(60), ts=float(i))
    obs = analyze_file(path)
    text = render.observation_text("user0.pcap", obs)
    assert "12 packets of link type 147 (USER0): not dissected" in text
    assert "no TLS in this capture" not in text


# -- snaplen ------------------------------------------------------------------------------------

def test_frames_cut_by_the_snaplen_are_counted_and_never_filled_in(monkeypatch):
    """snap128_nss.pcap: 11 frames captured at 128 of up to 1872 bytes. Each is counted per flow and
    direction; TCP reassembly is given only the captured bytes (the rest is a hole)."""
    given_to_tcp: list[tuple[int, int]] = []
    real_add = analyzer.Direction.add

    def add(self, seq, payload, *args):
        given_to_tcp.append((seq, len(payload)))
        return real_add(self, seq, payload, *args)

    monkeypatch.setattr(analyzer.Direction, "add", add)
    pcap = CAPTURES / "snap128_nss.pcap"
    obs = analyze_file(pcap)
    assert obs.truncated == 11
    assert [(f.label, f.truncated) for f in obs.flows] == [
        ("127.0.0.1:41386 → 127.0.0.1:443 tcp", {"c2s": 2, "s2c": 3}),
        ("127.0.0.1:41402 → 127.0.0.1:443 tcp", {"c2s": 2, "s2c": 4})]
    cut = [(p.frame, p.length, p.wire_length, p.payload_len, p.missing) for p in obs.packets if p.truncated]
    assert cut == [(4, 128, 254, 188, 126), (6, 128, 1395, 1329, 1267), (8, 128, 159, 93, 31),
                   (9, 128, 308, 242, 180), (11, 128, 1872, 1806, 1744), (22, 128, 291, 225, 163),
                   (24, 128, 1552, 1486, 1424), (26, 128, 146, 80, 18), (27, 128, 321, 255, 193),
                   (28, 128, 321, 255, 193), (31, 128, 1865, 1799, 1737)]
    assert all(len(p.payload) == 128 - 66 for p in obs.packets if p.truncated)      # 14 + 20 + 32 header bytes
    assert [n for _, n in given_to_tcp] == [len(p.payload) for p in obs.packets if p.proto == "tcp" and p.payload]
    assert sum(n for _, n in given_to_tcp) == sum(len(p.payload) for p in obs.packets)
    doc = obs.to_dict()
    assert doc["truncated_frames"] == 11 and doc["flows"][0]["truncated"] == {"c2s": 2, "s2c": 3}
    text = render.observation_text("snap128_nss.pcap", obs)
    assert "11 frames cut short by the capture (snaplen)" in text
    assert "127.0.0.1:41386 → 127.0.0.1:443 tcp (5 frames cut short by the capture: ↑ 2 ↓ 3)" in text
    if have_tshark():
        rows = tshark.fields(pcap, "frame.len > frame.cap_len", "frame.number", "frame.cap_len", "frame.len",
                             "tcp.len")
        assert [(int(n), int(c), int(w), int(t), int(w) - int(c)) for n, c, w, t in rows] == cut
        assert ours_packets(obs) == tshark_packets(pcap)


def test_an_ip_length_beyond_the_captured_bytes_is_a_cut_frame_too(tmp_path):
    """A frame whose IP total length says more than the frame holds (a capture tool that stored the
    original length wrong, or none): its payload is what is there, the rest counted as missing."""
    with open(CAPTURES / "nss_sll.pcap", "rb") as handle:
        frames = [(ts, bytes(frame)) for ts, frame in dpkt.pcap.Reader(handle)][:6]
    path = tmp_path / "short.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=113)
        for ts, frame in frames:
            writer.writepkt(frame[:100] if len(frame) > 100 else frame, ts=ts)     # caplen = len = 100
    obs = analyze_file(path)
    assert [(p.frame, p.length, p.wire_length, p.missing) for p in obs.packets if p.truncated] == [
        (4, 100, 100, 156), (6, 100, 100, 1297)]                # tcp.len 188 and 1329, 32 bytes of each kept
    assert obs.truncated == 2 and obs.flows[0].truncated == {"c2s": 1, "s2c": 1}
    if have_tshark():
        rows = tshark.fields(path, "_ws.expert.message contains \"total length exceeds packet length\"",
                             "frame.number", "ip.len", "tcp.len")
        assert [(int(n), int(total) - 20 - 32 - int(kept)) for n, total, kept in rows] == [(4, 156), (6, 1297)]


# -- DNS ----------------------------------------------------------------------------------------

def test_an_unknown_record_type_does_not_drop_the_message():
    """zeek_dns-https.pcap: an HTTPS (65) query and answer: 2 messages, the type kept."""
    pcap = CAPTURES / "zeek_dns-https.pcap"
    obs = analyze_file(pcap)
    expected = [(1, 0xF29F, False, "cloudflare.com", 65, (), ()),
                (2, 0xF29F, True, "cloudflare.com", 65, (65,), ())]
    assert ours_dns(obs) == expected
    assert [m.qtype for m in obs.dns] == ["HTTPS", "HTTPS"]
    assert obs.dns[1].answers == ("HTTPS record, 79 bytes",)
    if have_tshark():
        assert tshark_dns(pcap) == expected


def test_aaaa_answers_are_ipv6_addresses():
    """zeek_long-connection.pcap: 22 messages; AAAA www.netbsd.org -> 2001:4f8:4:7:2e0:81ff:fe52:9a6b."""
    pcap = CAPTURES / "zeek_long-connection.pcap"
    obs = analyze_file(pcap)
    assert len(obs.dns) == 22
    by_frame = {m.frame: m for m in obs.dns}
    assert by_frame[10].answers == by_frame[12].answers == ("2001:4f8:4:7:2e0:81ff:fe52:9a6b",)
    assert by_frame[22].answers == ("2001:4f8:0:2::d", "204.152.184.88") and by_frame[22].qtype == "ANY"
    assert by_frame[14].answers == ("www.l.google.com",)
    assert by_frame[2].answer_types == (15,) * 6 and by_frame[2].answers[0] == "40 smtp4.google.com"
    assert "DNS   AAAA www.netbsd.org → 2001:4f8:4:7:2e0:81ff:fe52:9a6b" in render.leak_lines(obs)
    if have_tshark():
        assert ours_dns(obs) == tshark_dns(pcap)


def test_dns_over_tcp_and_over_ipv6():
    """read_dns_tcp.pcap (made live on lo): AAAA over UDP/IPv6; over TCP/IPv6 two queries in one
    segment and answers split across segments, with HTTPS, CAA and RRSIG records; one over TCP/IPv4.
    Each message is where tshark shows it: the frame with its last byte."""
    pcap = CAPTURES / "read_dns_tcp.pcap"
    obs = analyze_file(pcap)
    expected = [(1, 0x1001, False, "www.lab.example", 28, (), ()),
                (2, 0x1001, True, "www.lab.example", 28, (28,), ("2001:db8::80",)),
                (6, 0x2001, False, "www.lab.example", 1, (), ()),
                (6, 0x2002, False, "www.lab.example", 65, (), ()),
                (10, 0x2001, True, "www.lab.example", 1, (5, 1), ("web.www.lab.example", "192.0.2.80")),
                (14, 0x2002, True, "www.lab.example", 65, (65,), ()),
                (16, 0x2003, False, "lab.example", 257, (), ()),
                (19, 0x2003, True, "lab.example", 257, (257, 46), ()),
                (27, 0x3001, False, "www.lab.example", 1, (), ()),
                (29, 0x3001, True, "www.lab.example", 1, (5, 1), ("web.www.lab.example", "192.0.2.80"))]
    assert ours_dns(obs) == expected
    assert [m.transport for m in obs.dns] == ["udp"] * 2 + ["tcp"] * 8
    assert obs.dns[7].answers == ("CAA record, 22 bytes", "RRSIG record, 20 bytes")
    times = {p.frame: p.time for p in obs.packets}
    assert all(m.time == times[m.frame] for m in obs.dns)
    if have_tshark():
        assert tshark_dns(pcap) == expected


def test_name_compression_cannot_loop():
    """A pointer to itself, and two pointing at each other: refused, never followed forever."""
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0)
    question = b"\x03abc\x00" + struct.pack("!HH", 1, 1)
    self_loop = header + question + b"\xc0\x15" + struct.pack("!HHIH", 5, 1, 60, 2) + b"\xc0\x1f"
    message = dns.parse_dns(self_loop, 0.0, "a", "b")
    assert message is not None and message.answers == ()
    with pytest.raises(dns.DnsFormatError, match="points forward"):
        dns.read_name(b"\xc0\x02\xc0\x00", 0)
    with pytest.raises(dns.DnsFormatError, match="longer than 255"):
        dns.read_name(b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63 + b"\0", 0)
    assert dns.read_name(b"\x01.\x02a\\\x00", 0) == ("\\..a\\\\", 6)
    assert dns.type_name(65) == "HTTPS" and dns.type_name(257) == "CAA" and dns.type_name(65280) == "TYPE65280"


@FUZZ
@given(st.binary(max_size=600))
def test_the_dns_reader_never_raises(data):
    message = dns.parse_dns(data, 0.0, "a", "b")
    if message is not None:
        message.to_dict()
    for start, end in dns.tcp_messages(data):
        assert 2 <= start < end <= len(data)


# -- files --------------------------------------------------------------------------------------

def test_a_pcapng_with_no_interface_is_a_capture_of_no_packets():
    """empty.pcap: a section header block and nothing else. tshark reads it: 0 packets."""
    obs = analyze_file(CAPTURES / "empty.pcap")
    assert (obs.frames, obs.flows, obs.tls) == (0, [], [])
    text = render.observation_text("empty.pcap", obs)
    assert text.endswith("a valid capture that holds no packets") and "no TLS" not in text
    if have_tshark():
        proc = subprocess.run([tshark.require(), "-r", str(CAPTURES / "empty.pcap")], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout == ""


@pytest.mark.parametrize("cut", [100, 1000, 6000, -3])
def test_a_cut_pcapng_says_where_it_ends(cut):
    data = (CAPTURES / "read_mixed.pcapng").read_bytes()
    with pytest.raises(CaptureFormatError) as caught:
        analyze(data[:cut], name="cut.pcapng")
    message = str(caught.value)
    assert message.startswith("cut.pcapng is cut short: it ends inside a")
    assert not message.endswith("()") and "\n" not in message and caught.value.status == 2
    assert "whole packets" in message


def pcapng_head(path: Path) -> bytes:
    """A pcapng file's section header block and first interface description block."""
    data = path.read_bytes()
    shb = struct.unpack_from("<I", data, 4)[0]
    return data[:shb + struct.unpack_from("<I", data, shb + 4)[0]]


def _random_after(header: bytes, path: Path, megabytes: int) -> Path:
    """HEADER, then MEGABYTES of random bytes (always the same ones: the first record's length is
    one no capture writes, as it is for all but about 1 in 1,000 random ones)."""
    import random

    noise = random.Random(13)
    with open(path, "wb") as handle:
        handle.write(header)
        for _ in range(megabytes):
            handle.write(noise.randbytes(1 << 20))
    return path


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_random_bytes_after_a_valid_header_are_refused_at_once(tmp_path, kind):
    """30 MB of random bytes behind a pcap header, or a pcapng section header and interface: refused at
    the first record, having read a chunk of the file and no more (tshark refuses them too)."""
    import time
    import tracemalloc

    source = CAPTURES / ("read_null.pcap" if kind == "pcap" else "read_mixed.pcapng")
    header = source.read_bytes()[:24] if kind == "pcap" else pcapng_head(source)
    path = _random_after(header, tmp_path / f"random.{kind}", 30)
    tracemalloc.start()
    began = time.monotonic()
    try:
        with pytest.raises(CaptureFormatError, match="is damaged, or not a capture after its header") as caught:
            analyze_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, peak
    assert time.monotonic() - began < 5
    assert "\n" not in str(caught.value) and caught.value.status == 2
    if have_tshark():
        proc = subprocess.run([tshark.require(), "-r", str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0


def test_a_capture_is_read_forward_not_whole(tmp_path):
    """40 MB of frames the analyzer keeps nothing of (a link type it does not dissect): memory holds a
    chunk or two of the file, not the file (the old reader held it all, then a copy)."""
    import tracemalloc

    path = tmp_path / "big.pcap"
    frame = bytes(60000)
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=147, snaplen=65535)
        for i in range(700):
            writer.writepkt(frame, ts=float(i))
    tracemalloc.start()
    try:
        obs = analyze_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert obs.frames == 700 and obs.not_dissected == {"of link type 147 (USER0)": 700}
    assert peak < 8 << 20, peak


def test_a_pcapng_packet_naming_an_undescribed_interface_is_damage(tmp_path):
    data = bytearray((CAPTURES / "snap128_nss.pcap").read_bytes())
    first_epb = data.index(struct.pack("<I", 6))
    struct.pack_into("<I", data, first_epb + 8, 3)
    with pytest.raises(CaptureFormatError, match=r"packet 1 \(an enhanced packet block at byte \d+\) names "
                                                 r"interface 3, and its section describes 1 interface"):
        analyze(bytes(data), name="bad.pcapng")


def test_pcapng_secrets_and_interfaces_are_kept(tmp_path):
    """A Decryption Secrets Block (editcap --inject-secrets) is kept for the key log reader."""
    if shutil.which("editcap") is None:
        pytest.skip("editcap (wireshark) not installed")
    keys = CAPTURES / "scapy_tls_nss_example.keys.txt"
    out = tmp_path / "with-keys.pcapng"
    subprocess.run(["editcap", "--inject-secrets", f"tls,{keys}", str(CAPTURES / "nss_sll.pcap"), str(out)],
                   check=True)
    obs = analyze_file(out)
    assert obs.secrets == [(0x544C534B, keys.read_bytes())]
    assert len(obs.tls) == 2


# -- the decoder and the reader on what a file may hold ------------------------------------------

@FUZZ
@given(linktype=st.sampled_from(sorted(packets.DECODED)), frame=st.binary(max_size=200))
def test_the_decoder_never_raises(linktype, frame):
    segment = packets.decode(linktype, memoryview(frame))
    if isinstance(segment, packets.Segment):
        assert segment.start <= segment.end <= len(frame) and segment.missing >= 0


@FUZZ
@given(st.binary(max_size=3000))
def test_random_blocks_after_a_pcapng_header(data):
    header = pcapng_head(CAPTURES / "read_mixed.pcapng")
    try:
        analyze(header + data, name="fuzzed.pcapng").to_dict()
    except CaptureFormatError as exc:
        assert "\n" not in str(exc) and not str(exc).endswith("()")


def test_analyze_reads_in_place_and_from_a_stream():
    import io

    data = (CAPTURES / "nss_ipv6.pcap").read_bytes()
    from_bytes, from_stream = analyze(data), analyzer.analyze_stream(io.BytesIO(data))
    assert flows(from_bytes) == flows(from_stream) and from_bytes.frames == from_stream.frames == 37


def test_dns_rcodes_are_said_and_mdns_is_read(tmp_path):
    """Every message tshark reads, with its rcode; an NXDOMAIN is not "no answer" (new-user tryout).
    Multicast DNS (RFC 6762, port 5353) is the same format: read too, as tshark's mdns."""
    import dpkt

    pcap = CAPTURES / "read_dns_rcodes.pcap"
    observation = analyze_file(pcap)
    theirs = tshark.fields(pcap, "dns || mdns", "frame.number", "dns.qry.name", "dns.flags.rcode")
    assert [(m.frame, m.name, m.rcode) for m in observation.dns] == \
        [(int(f), name, int(rcode or 0)) for f, name, rcode in theirs]
    assert "nope.example.net → NXDOMAIN (no such name)" in render.observation_text("x", observation)
    answer = dpkt.dns.DNS(id=0, qr=dpkt.dns.DNS_R, op=dpkt.dns.DNS_AA, rcode=0)
    answer.qd = [dpkt.dns.DNS.Q(name="printer.local", type=dpkt.dns.DNS_A)]
    answer.an = [dpkt.dns.DNS.RR(name="printer.local", type=dpkt.dns.DNS_A, ip=bytes([192, 168, 1, 9]), ttl=120)]
    udp = dpkt.udp.UDP(sport=5353, dport=5353, data=bytes(answer))
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=bytes([192, 168, 1, 9]), dst=bytes([224, 0, 0, 251]), p=dpkt.ip.IP_PROTO_UDP, data=udp)
    ip.len = len(ip)
    eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x01\x00\x5e\x00\x00\xfb", data=ip)
    mdns = tmp_path / "mdns.pcap"
    with open(mdns, "wb") as out:
        dpkt.pcap.Writer(out).writepkt(bytes(eth), 1.0)
    [message] = analyze_file(mdns).dns
    assert (message.name, message.answers) == ("printer.local", ("192.168.1.9",))
    assert tshark.fields(mdns, "mdns", "dns.a") == [["192.168.1.9"]]


@pytest.mark.parametrize("tunnel", ["vxlan", "geneve", "gtpu"])
def test_tls_inside_a_udp_tunnel_is_read_as_tshark_reads_it(tunnel):
    """VXLAN, Geneve and GTP-U carry whole frames or IP packets in UDP: the TLS inside is read (new-user
    tryout: each said "no TLS in this capture")."""
    pcap = CAPTURES / f"read_tunnel_{tunnel}.pcap"
    observation = analyze_file(pcap)
    [connection] = observation.tls
    theirs = [int(n) for [lengths] in tshark.fields(pcap, "tls.record", "tls.record.length")
              for n in lengths.split(",")]
    assert sorted(r.length for r in connection.records) == sorted(theirs) and len(theirs) == 15
    inner = tshark.fields(pcap, "tcp", "ip.src", "tcp.srcport")[0]
    assert (connection.flow.client, str(connection.flow.client_port)) in {(inner[0].split(",")[-1], inner[1])}
