"""The analyzer on captures the tests make themselves (tests/synth.py), checked against tshark."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from labctl import runner
from labctl.tls.analyzer import CaptureFormatError, analyze, analyze_file
from labctl.tls.constants import TLS12, TLS13, version_name
from tests import synth, tshark


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analyzer")
    return {
        "tls13": synth.tls_session(tmp, name="tls13"),
        "tls12": synth.tls_session(tmp, max_version="1.2", name="tls12"),
        "tls12-ecdsa": synth.tls_session(tmp, max_version="1.2", key_type="ecdsa", name="tls12e"),
        "rsa-kx": synth.tls_session(tmp, max_version="1.2", ciphers="AES128-GCM-SHA256", name="rsakx"),
        "plain": synth.plain_session(tmp, request=synth.DEFAULT_REQUEST, response=synth.DEFAULT_RESPONSE),
    }


@pytest.mark.parametrize("name", ["tls13", "tls12", "tls12-ecdsa", "rsa-kx"])
def test_records_match_tshark(sessions, name):
    session = sessions[name]
    conn = analyze_file(session.pcap).tls[0]
    ours = {d: [(r.content_type, r.length) for r in conn.records if r.direction == d] for d in ("c2s", "s2c")}
    assert ours == tshark.records(session.pcap)


@pytest.mark.parametrize("name", ["tls13", "tls12", "rsa-kx"])
def test_hellos_match_tshark(sessions, name):
    session = sessions[name]
    conn = analyze_file(session.pcap).tls[0]
    [(sni, offered)] = tshark.fields(session.pcap, "tls.handshake.type == 1", "tls.handshake.extensions_server_name",
                                     "tls.handshake.ciphersuite")
    assert conn.client_hello.sni == sni == "server.lab.test"
    assert len(conn.client_hello.cipher_suites) == len(offered.split(","))
    suite, legacy, supported = tshark.fields(session.pcap, "tls.handshake.type == 2", "tls.handshake.ciphersuite",
                                             "tls.handshake.version",
                                             "tls.handshake.extensions.supported_version")[0]
    assert conn.server_hello.cipher_suite == int(suite, 16)
    assert conn.server_hello.version == int(supported or legacy, 16)
    assert version_name(conn.version) == {"TLSv1.3": "TLS 1.3", "TLSv1.2": "TLS 1.2"}[session.version]


def test_versions_are_numbers_until_they_are_shown(sessions):
    tls13 = analyze_file(sessions["tls13"].pcap).tls[0]
    tls12 = analyze_file(sessions["tls12"].pcap).tls[0]
    assert (tls13.version, tls13.server_hello.version, tls12.version) == (TLS13, TLS13, TLS12)
    assert tls13.client_hello.supported_versions == (TLS13, TLS12)      # what the client offered, in its order
    assert tls12.client_hello.supported_versions == ()                  # a TLS 1.2 client has no such extension
    # The JSON document (`labctl analyze --json`) shows names, as it always did.
    doc = tls13.to_dict()
    assert doc["version"] == doc["server_hello"]["version"] == "TLS 1.3"
    assert doc["client_hello"]["supported_versions"] == ["TLS 1.3", "TLS 1.2"]
    assert doc["server_hello"]["legacy_version"] == doc["client_hello"]["legacy_version"] == "0x0303"
    no_hello = dataclasses.replace(tls13, server_hello=None)
    assert no_hello.version is None and no_hello.to_dict()["version"] is None


def test_rsa_key_exchange_suite_is_named(sessions):
    assert analyze_file(sessions["rsa-kx"].pcap).tls[0].server_hello.cipher_name == "TLS_RSA_WITH_AES_128_GCM_SHA256"


@pytest.mark.parametrize("name", ["tls12", "tls12-ecdsa"])
def test_tls12_certificate_is_read_in_clear(sessions, name):
    session = sessions[name]
    [cert] = analyze_file(session.pcap).tls[0].certificates
    subject = tshark.fields(session.pcap, "tls.handshake.type == 11", "x509sat.printableString",
                            "x509sat.uTF8String")
    assert "server.lab.test" in cert.subject and "server.lab.test" in cert.sans
    assert "server.lab.test" in "".join(",".join(row) for row in subject)


def test_tls13_certificate_is_not_readable(sessions):
    assert analyze_file(sessions["tls13"].pcap).tls[0].certificates == []


def test_secret_search_finds_clear_text_and_not_ciphertext(sessions):
    secret = b"s3cr3t-cookie-value"
    assert analyze_file(sessions["plain"].pcap).find(secret)
    assert analyze_file(sessions["tls13"].pcap).find(secret) == []


def test_secret_split_across_segments_is_found_in_the_stream(tmp_path):
    """A secret cut in two by TCP segmentation is in no single packet, only in the reassembled stream."""
    secret = b"s3cr3t-" + b"k" * 30
    request = b"POST /login HTTP/1.1\r\n\r\n" + b"a" * (synth.SEGMENT - 40) + secret
    session = synth.plain_session(tmp_path, request=request, response=synth.DEFAULT_RESPONSE)
    places = analyze_file(session.pcap).find(secret)
    assert places and all(p.startswith("stream") for p in places)


def test_application_data_bytes_per_direction(sessions):
    conn = analyze_file(sessions["tls12"].pcap).tls[0]
    assert conn.app_data_bytes("c2s") >= len(synth.DEFAULT_REQUEST)
    assert conn.app_data_bytes("s2c") >= len(synth.DEFAULT_RESPONSE)


def test_flows_count_packets_and_bytes_per_direction(sessions):
    obs = analyze_file(sessions["tls13"].pcap)
    [flow] = obs.flows
    assert (flow.server, flow.server_port) == (synth.SERVER_IP, 443)
    rows = tshark.fields(sessions["tls13"].pcap, "tcp", "ip.src", "tcp.len")
    assert flow.packets["c2s"] == sum(1 for src, _ in rows if src == synth.CLIENT_IP)
    assert flow.payload_bytes["s2c"] == sum(int(n) for src, n in rows if src == synth.SERVER_IP)


# -- what the analyzer refuses, and what it does not claim ---------------------------------

def test_a_file_that_is_not_a_capture(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("certainly not a pcap, but long enough to have a header\n")
    with pytest.raises(CaptureFormatError, match="is not a pcap or pcapng file"):
        analyze_file(path)


def test_an_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match="empty.pcap is empty: give a pcap or pcapng capture"):
        analyze_file(path)


def test_a_capture_cut_short(sessions, tmp_path):
    data = sessions["tls13"].pcap.read_bytes()
    with pytest.raises(CaptureFormatError, match=r"cut short: it ends inside a packet record after \d+ whole"):
        analyze(data[:len(data) // 2 + 7], name="half.pcap")


def test_a_capture_without_tls_is_reported_as_such_not_as_a_pass(sessions):
    obs = analyze_file(sessions["plain"].pcap)
    assert obs.tls == []
    assert not runner.check_tls_seen(None, TLS13).passed
    check, plain, _ = runner.check_decryption(None, "", {}, "x")
    assert not check.passed and plain is None
    assert not runner.check_sni_leak(None, "server.lab.test").passed


def test_decryption_check_fails_with_a_foreign_key_log(sessions):
    conn = analyze_file(sessions["tls13"].pcap).tls[0]
    foreign = sessions["tls12"].keylog.read_text()
    check, _, _ = runner.check_decryption(conn, foreign, {"request": synth.DEFAULT_REQUEST.decode()}, "s3cr3t")
    assert not check.passed and "no secrets for this connection" in check.evidence


def test_decryption_check_passes_with_the_right_key_log(sessions):
    session = sessions["tls13"]
    conn = analyze_file(session.pcap).tls[0]
    check, plain, _ = runner.check_decryption(conn, session.keylog.read_text(),
                                              {"request": session.request.decode("latin-1")}, "s3cr3t-cookie-value")
    assert check.passed, check.evidence
    assert plain["c2s"] == session.request and plain["s2c"] == session.response


# -- what `labctl analyze FILE` reads before it refuses a file ------------------------------------

def test_a_large_file_that_is_not_a_capture_is_refused_after_its_header(tmp_path, monkeypatch):
    """50 MB of random bytes: refused having read a header's worth, with next to no memory."""
    import os
    import tracemalloc

    from labctl.tls.analyzer import read_capture

    path = tmp_path / "random.bin"
    with open(path, "wb") as handle:
        handle.write(b"RAND")                       # never a capture's magic number
        for _ in range(50):
            handle.write(os.urandom(1 << 20))
    read_bytes = []
    real_read = os.read

    def counting(fd, n):
        data = real_read(fd, n)
        read_bytes.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting)
    tracemalloc.start()
    try:
        with pytest.raises(CaptureFormatError, match=r"random.bin is not a pcap or pcapng file \(it starts with "
                                                     r"52 41 4e 44") as caught:
            read_capture(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(read_bytes) <= 64, read_bytes
    assert peak < 1 << 20, peak
    assert caught.value.status == 2 and "\n" not in str(caught.value)


@pytest.mark.parametrize("what, message", [
    ("folder", "is a folder, not a file"),
    ("/dev/zero", "is a character device, not a file"),
    ("fifo", r"is a FIFO \(named pipe\), not a file"),
    ("empty", "is empty"),
    ("short", "too short for a pcap header"),
    ("missing", "cannot read .*: No such file or directory"),
    ("blank", "is not a file name"),
])
def test_what_is_not_a_capture_file_is_one_line_and_exit_2(tmp_path, what, message):
    """Each refused before it is read (a FIFO would wait for a writer, /dev/zero never ends)."""
    from labctl.tls.analyzer import read_capture

    path = {"folder": str(tmp_path), "/dev/zero": "/dev/zero", "fifo": str(tmp_path / "fifo"),
            "empty": str(tmp_path / "empty.pcap"), "short": str(tmp_path / "short.pcap"),
            "missing": str(tmp_path / "missing.pcap"), "blank": "  "}[what]
    if what == "fifo":
        import os

        os.mkfifo(path)
    elif what == "empty":
        open(path, "wb").close()
    elif what == "short":
        with open(path, "wb") as handle:
            handle.write(b"\xd4\xc3\xb2\xa1\x02\x00")
    with pytest.raises(CaptureFormatError, match=message) as caught:
        read_capture(path)
    assert caught.value.status == 2 and "\n" not in str(caught.value)


def test_an_unreadable_file(tmp_path, monkeypatch):
    import os

    from labctl.tls.analyzer import read_capture

    path = tmp_path / "secret.pcap"
    path.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20))
    real_open = os.open

    def denied(file, flags, *args, **kwargs):       # root reads anything: the denial is made here
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CaptureFormatError, match=r"cannot read .*secret.pcap: Permission denied"):
        read_capture(path)


def test_a_name_that_is_not_utf8_is_printed_escaped(sessions, tmp_path):
    import os

    from labctl.tls.analyzer import read_capture

    raw = os.fsencode(tmp_path) + b"/caf\xe9.pcap"
    with open(raw, "wb") as handle:
        handle.write(sessions["tls13"].pcap.read_bytes())
    assert analyze_file(os.fsdecode(raw)).tls
    with open(raw, "wb") as handle:
        handle.write(b"not a capture at all, a longer text")
    with pytest.raises(CaptureFormatError) as caught:
        read_capture(os.fsdecode(raw))
    assert "caf\\xe9.pcap is not a pcap" in str(caught.value)
    str(caught.value).encode("utf-8")


def test_a_pcapng_file_is_read(sessions, tmp_path):
    """The header check lets pcapng through (tshark converts the synthetic pcap)."""
    import shutil
    import subprocess

    if shutil.which("editcap") is None:
        pytest.skip("editcap (wireshark) not installed")
    out = tmp_path / "s.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(sessions["tls13"].pcap), str(out)], check=True)
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert analyze_file(out).tls[0].client_hello.sni == "server.lab.test"


@pytest.mark.parametrize("what", ["/dev/zero", "fifo", "folder"])
def test_labctl_analyze_refuses_at_once_what_it_must_not_read(tmp_path, what):
    """Through the command line, in a process of its own: a regression would hang, not pass."""
    import os
    import subprocess
    import sys

    path = {"/dev/zero": "/dev/zero", "fifo": str(tmp_path / "fifo"), "folder": str(tmp_path)}[what]
    if what == "fifo":
        os.mkfifo(path)
    program = "import sys; from labctl.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", program, "analyze", path], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("labctl: error: ") and proc.stderr.count("\n") == 1, proc.stderr


# -- every packet once, as data; each record at the frame tshark shows it in ---------------------

def _with_arp_and_dns(pcap, out):
    """PCAP with an ARP frame first (not IPv4: numbered, not listed) and a DNS query and answer (UDP) after
    the TCP handshake, so that frame numbers count every frame and UDP packets are listed too."""
    import socket

    import dpkt

    with open(pcap, "rb") as handle:
        frames = list(dpkt.pcap.Reader(handle))
    start = frames[0][0]
    client, dns = socket.inet_aton(synth.CLIENT_IP), socket.inet_aton("10.77.0.53")
    arp = dpkt.ethernet.Ethernet(src=b"\x02\x42" + client, dst=b"\xff" * 6, type=dpkt.ethernet.ETH_TYPE_ARP,
                                 data=dpkt.arp.ARP(sha=b"\x02\x42" + client, spa=client, tpa=dns))
    query = dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="server.lab.test")])
    answer = dpkt.dns.DNS(id=7, qr=dpkt.dns.DNS_R, qd=query.qd,
                          an=[dpkt.dns.DNS.RR(name="server.lab.test", ip=socket.inet_aton(synth.SERVER_IP))])

    def udp(src, dst, sport, dport, message):
        ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_UDP,
                        data=dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(bytes(message)), data=bytes(message)))
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02\x42" + src, dst=b"\x02\x42" + dst,
                                            type=dpkt.ethernet.ETH_TYPE_IP, data=ip))

    extra = [(start - 0.002, bytes(arp)), (frames[2][0] + 0.00001, udp(client, dns, 40000, 53, query)),
             (frames[2][0] + 0.00002, udp(dns, client, 53, 40000, answer))]
    with open(out, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in sorted(frames + extra, key=lambda f: f[0]):
            writer.writepkt(frame, ts=ts)
    return out


def test_every_ipv4_packet_is_listed_once_as_tshark_shows_it(sessions, tmp_path):
    pcap = _with_arp_and_dns(sessions["tls12"].pcap, tmp_path / "mixed.pcap")
    obs = analyze_file(pcap)
    rows = tshark.fields(pcap, "ip", "frame.number", "frame.time_relative", "eth.src", "eth.dst", "ip.src", "ip.dst",
                         "ip.proto", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.flags",
                         "tcp.seq_raw", "tcp.len", "udp.length", "frame.cap_len")
    theirs = [(int(number), src_mac, dst_mac, src, dst, {"6": "tcp", "17": "udp"}[proto],
               int(tsport or usport), int(tdport or udport), int(flags or "0", 16), int(seq or 0),
               int(tlen) if tlen else int(ulen) - 8, int(length))
              for (number, _, src_mac, dst_mac, src, dst, proto, tsport, tdport, usport, udport, flags, seq, tlen,
                   ulen, length) in rows]
    ours = [(p.frame, p.src_mac, p.dst_mac, p.src, p.dst, p.proto, p.sport, p.dport, p.flags, p.seq,
             p.payload_len, p.length) for p in obs.packets]
    assert ours == theirs
    assert [p.time for p in obs.packets] == pytest.approx([float(row[1]) for row in rows], abs=1e-6)
    assert obs.frames == len(obs.packets) + 1 == int(tshark.fields(pcap, "arp", "frame.number")[0][0]) + len(rows)
    assert [p.proto for p in obs.packets].count("udp") == 2 and obs.packets[0].frame == 2    # after the ARP frame
    assert obs.to_dict()["packets"] == obs.frames                   # the JSON still counts every frame
    assert obs.payloads == [p.payload for p in obs.packets if p.payload_len]


@pytest.mark.parametrize("name", ["tls13", "tls12", "big"])
def test_each_record_is_numbered_by_the_frame_tshark_shows_it_in(sessions, tmp_path, name):
    """A record is shown in the frame that carries its last byte: records span frames (20 KB of
    response in 1448-byte segments) and frames hold several records (a TLS 1.2 server's flight)."""
    session = (sessions[name] if name != "big" else
               synth.tls_session(tmp_path, response=synth.http_response(bytes(range(256)) * 80), name="big"))
    conn = analyze_file(session.pcap).tls[0]
    rows = tshark.fields(session.pcap, "tls.record", "frame.number", "tcp.srcport", "tls.record.length")
    theirs: dict[str, list[tuple[int, int]]] = {"c2s": [], "s2c": []}
    for number, port, lengths in rows:
        direction = "s2c" if port == "443" else "c2s"
        theirs[direction] += [(int(number), int(n)) for n in lengths.split(",")]
    ours = {d: [(r.frame, r.length) for r in conn.records if r.direction == d] for d in ("c2s", "s2c")}
    assert ours == theirs
    spanning = [r for r in conn.records if r.length > synth.SEGMENT]
    assert (name == "big") == bool(spanning)
    times = {p.frame: p.time for p in analyze_file(session.pcap).packets}
    assert all(r.time <= times[r.frame] for r in conn.records)      # dated by its first byte, numbered by its last
    assert all(r.time < times[r.frame] for r in spanning)


def test_a_shorter_retransmission_does_not_take_the_originals_bytes(tmp_path):
    """Frame 3 resends the first record of frame 2 at the same sequence number: the records are frame 2's,
    where tshark shows them too (it marks frame 3 as a retransmission)."""
    import dpkt

    records = b"".join(bytes([22, 3, 1]) + (40).to_bytes(2, "big") + bytes(range(40)) for _ in range(2))

    def frame(seq: int, flags: int, payload: bytes = b"") -> bytes:
        tcp = dpkt.tcp.TCP(sport=40000, dport=443, seq=seq, ack=1, flags=flags, win=65535, data=payload)
        ip = dpkt.ip.IP(src=bytes([10, 77, 0, 10]), dst=bytes([10, 77, 0, 20]), p=dpkt.ip.IP_PROTO_TCP, data=tcp,
                        ttl=64)
        ip.len = len(bytes(ip))
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))

    path = tmp_path / "retransmission.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        writer.writepkt(frame(999, dpkt.tcp.TH_SYN), ts=1.0)
        writer.writepkt(frame(1000, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, records), ts=1.1)
        writer.writepkt(frame(1000, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, records[:45]), ts=1.3)
    [conn] = analyze_file(path).tls
    assert [r.frame for r in conn.records] == [2, 2]
    assert {int(f) for (f,) in tshark.fields(path, "tls.record", "frame.number")} == {2}


@pytest.mark.parametrize("settle_at", [300, 2000])
def test_reading_in_bounded_memory_finds_what_keeping_everything_finds(monkeypatch, settle_at):
    """analyze(keep=False) reads a TCP direction's records as it goes and lets its bytes go (dissect,
    SETTLE_AT): with the threshold forced down to a few hundred bytes, every committed capture gives the
    same flows, holes, records (with frames, offsets, what is missing and lost) and DNS as keep=True."""
    from labctl.tls import analyzer
    monkeypatch.setattr(analyzer, "SETTLE_AT", settle_at)
    monkeypatch.setattr(analyzer, "PATIENCE", 4 * settle_at)

    def facts(o):
        return ([(f.label, f.gaps, f.to_dict()["holes"], f.truncated, f.packets, f.payload_bytes) for f in o.flows],
                [(c.flow.label, [(r.direction, r.content_type, r.length, r.offset, r.frame, r.missing, r.after_gap)
                                 for r in c.records], c.client_hello, c.server_hello, len(c.certificates))
                 for c in o.tls],
                [d.to_dict() for d in o.dns], [p.payload_len for p in o.packets])

    folder = Path(__file__).resolve().parent.parent / "captures"
    captures = sorted(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng"))
    compared = 0
    for pcap in captures:
        try:
            whole = analyze_file(pcap)
        except CaptureFormatError:
            continue                                # the damaged inputs: refused either way
        assert facts(analyze_file(pcap, keep=False)) == facts(whole), pcap.name
        compared += 1
    assert compared > 50
