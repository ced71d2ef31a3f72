"""Makes the inputs of issue #13's reading part (CASES.md, section "Reading") from the public ones here.

Run from the repository's root, as root (the DNS capture listens on port 53 and records `lo` with dumpcap):

    python tests/captures/make_reading.py            # the rewrapped captures (deterministic)
    python tests/captures/make_reading.py dns-tcp    # and a new DNS-over-TCP capture (made live)

The rewraps take the two TLS connections of nss_sll.pcap (IPv4) and nss_ipv6.pcap (IPv6; the same
exchange) and put their IP packets in another link layer, timestamps and bytes unchanged; mergecap
makes the pcapng whose interfaces have different link types. tshark is the judge of each
(tests/unit/test_cases_reading.py asks it live).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dpkt

HERE = Path(__file__).resolve().parent


def ip_packets(name: str, header: int) -> list[tuple[float, bytes]]:
    """(time, IP packet) of each frame of NAME, its link-layer header (HEADER bytes) taken off."""
    with open(HERE / name, "rb") as handle:
        return [(ts, bytes(frame[header:])) for ts, frame in dpkt.pcap.Reader(handle)]


def write(name: str, linktype: int, frames: list[tuple[float, bytes]]) -> None:
    with open(HERE / name, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, snaplen=262144, linktype=linktype)
        for ts, frame in frames:
            writer.writepkt(frame, ts=ts)


def rewraps() -> None:
    v4 = ip_packets("nss_sll.pcap", 16)                 # Linux cooked v1: 16-byte header
    v6 = ip_packets("nss_ipv6.pcap", 14)                # Ethernet
    with open(HERE / "nss_sll.pcap", "rb") as handle:
        cooked = [(ts, bytes(frame)) for ts, frame in dpkt.pcap.Reader(handle)]
    first, second = slice(0, 18), slice(18, 37)          # frames 1-18: port 41386; 19-37: port 41402

    # macOS lo0: LINKTYPE_NULL, the family in the host's byte order (little-endian), AF_INET 2, AF_INET6 30.
    write("read_null.pcap", 0, [(ts, struct.pack("<I", 2) + ip) for ts, ip in v4[first]] +
          [(ts, struct.pack("<I", 30) + ip) for ts, ip in v6[second]])
    # OpenBSD lo0: LINKTYPE_LOOP, the family big-endian, AF_INET6 24.
    write("read_loop.pcap", 108, [(ts, struct.pack(">I", 24) + ip) for ts, ip in v6[first]])
    # Linux cooked v2 (tcpdump -i any, libpcap >= 1.10): protocol, reserved, ifindex, ARPHRD, packet type,
    # address length, address (8): the v1 header's fields, reordered.
    sll2 = []
    for ts, frame in cooked[second]:
        packet_type, hatype, halen = struct.unpack_from("!HHH", frame)
        address, protocol = frame[6:14], frame[14:16]
        sll2.append((ts, protocol + b"\0\0" + struct.pack("!IHBB", 1, hatype, packet_type, halen) + address +
                     frame[16:]))
    write("read_sll2.pcap", 276, sll2)
    # Raw IP (LINKTYPE_RAW): the version nibble says IPv4 or IPv6.
    write("read_rawip.pcap", 101, v4[first] + v6[second])
    # Ethernet with an 802.1Q tag (VLAN 10) on the first connection, 802.1ad + 802.1Q (QinQ: 20, then 10) on
    # the second.
    with open(HERE / "nss_ipv6.pcap", "rb") as handle:
        eth = [(ts, bytes(frame)) for ts, frame in dpkt.pcap.Reader(handle)]
    tagged = [(ts, f[:12] + b"\x81\x00" + struct.pack("!H", 10) + f[12:]) for ts, f in eth[first]]
    tagged += [(ts, f[:12] + b"\x88\xa8" + struct.pack("!H", 20) + b"\x81\x00" + struct.pack("!H", 10) + f[12:])
               for ts, f in eth[second]]
    write("read_vlan.pcap", 1, tagged)
    # A pcapng with four interfaces of four link types: LOOP, cooked v2, Ethernet, and USER0 (147), which
    # the analyzer does not dissect and must name.
    with tempfile.TemporaryDirectory() as tmp:
        user0 = Path(tmp) / "user0.pcap"
        subprocess.run(["editcap", "-T", "user0", str(HERE / "zeek_dns-https.pcap"), str(user0)], check=True)
        subprocess.run(["mergecap", "-F", "pcapng", "-w", str(HERE / "read_mixed.pcapng"), str(HERE / "read_loop.pcap"),
                        str(HERE / "read_sll2.pcap"), str(HERE / "zeek_dns-https.pcap"), str(user0)], check=True)


# -- DNS over TCP and over IPv6, made live on loopback ---------------------------------------------

def name(text: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in text.split(".") if label) + b"\0"


def query(ident: int, qname: str, qtype: int) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + name(qname) + struct.pack("!HH", qtype, 1)


def response(request: bytes, answers: list[tuple[int, bytes]]) -> bytes:
    """REQUEST answered: each answer's owner is the question's name (a compression pointer to offset 12)."""
    ident = struct.unpack_from("!H", request)[0]
    question = request[12:]
    records = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", kind, 1, 300, len(data)) + data for kind, data in answers)
    return struct.pack("!HHHHHH", ident, 0x8580, 1, len(answers), 0, 0) + question + records


def answers_for(request: bytes) -> list[tuple[int, bytes]]:
    qtype = struct.unpack_from("!H", request, len(request) - 4)[0]
    if qtype == 1:        # A: a CNAME (its target compressed against the question), then the address
        return [(5, b"\x03web\xc0\x0c"), (1, socket.inet_aton("192.0.2.80"))]
    if qtype == 28:       # AAAA
        return [(28, socket.inet_pton(socket.AF_INET6, "2001:db8::80"))]
    if qtype == 65:       # HTTPS (RFC 9460): priority 1, target ".", alpn=h2
        return [(65, b"\x00\x01\x00" + b"\x00\x01\x00\x03\x02h2")]
    if qtype == 257:      # CAA 0 issue "letsencrypt.org", and an RRSIG (46) over it: 20 bytes of nothing
        return [(257, b"\x00\x05issueletsencrypt.org"), (46, bytes(20))]
    return []


def serve_tcp(listener: socket.socket, split: bool) -> None:
    """One connection: answer each length-prefixed query; with SPLIT, send each answer in two pieces
    (length and header, then the rest), so a message crosses a segment boundary."""
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    while True:
        data = conn.recv(4096)
        if not data:
            break
        buffer += data
        while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
            size = int.from_bytes(buffer[:2], "big")
            request, buffer = buffer[2:2 + size], buffer[2 + size:]
            reply = response(request, answers_for(request))
            framed = len(reply).to_bytes(2, "big") + reply
            if split:
                conn.sendall(framed[:9])
                time.sleep(0.05)
                conn.sendall(framed[9:])
            else:
                conn.sendall(framed)
            time.sleep(0.05)
    conn.close()


def dns_tcp() -> None:
    out = HERE / "read_dns_tcp.pcap"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.pcapng"
        capture = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", "port 53", "-w", str(raw)])
        try:
            time.sleep(2)
            # DNS over UDP and IPv6: one AAAA query and its answer.
            udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            udp.bind(("::1", 53))
            client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            client.sendto(query(0x1001, "www.lab.example", 28), ("::1", 53))
            request, peer = udp.recvfrom(512)
            udp.sendto(response(request, answers_for(request)), peer)
            client.recv(512)
            for family, host, split in ((socket.AF_INET6, "::1", True), (socket.AF_INET, "127.0.0.1", False)):
                listener = socket.socket(family, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((host, 53))
                listener.listen(1)
                server = threading.Thread(target=serve_tcp, args=(listener, split))
                server.start()
                conn = socket.create_connection((host, 53))
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if split:     # two queries in one segment, then a third; answers split across segments
                    first = [query(0x2001, "www.lab.example", 1), query(0x2002, "www.lab.example", 65)]
                    conn.sendall(b"".join(len(q).to_bytes(2, "big") + q for q in first))
                    time.sleep(0.3)
                    last = query(0x2003, "lab.example", 257)
                    conn.sendall(len(last).to_bytes(2, "big") + last)
                else:
                    only = query(0x3001, "www.lab.example", 1)
                    conn.sendall(len(only).to_bytes(2, "big") + only)
                time.sleep(0.3)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(4096):
                    pass
                conn.close()
                server.join()
                listener.close()
            udp.close()
            client.close()
            time.sleep(1)
        finally:
            capture.terminate()
            capture.wait()
        # A pcapng's section header names this machine's system: a pcap keeps the packets only.
        subprocess.run(["editcap", "-F", "pcap", str(raw), str(out)], check=True)


if __name__ == "__main__":
    rewraps()
    if sys.argv[1:] == ["dns-tcp"]:
        dns_tcp()
