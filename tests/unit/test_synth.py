"""tests/synth.py writes captures that real dissectors accept as clean TCP."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest

from tests import pcaputil, synth

SEGMENT = 1448
# Expert-info summaries a sound TCP stream must not produce.
BAD = re.compile(r"malformed|retransmission|previous segment not captured|acked unseen|out-of-order|"
                 r"dup ack|zero ?window|window full|bad checksum|checksum.*incorrect", re.IGNORECASE)


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, synth.Session]:
    folder = tmp_path_factory.mktemp("synth")
    return {
        "tls13": synth.tls_session(folder, name="tls13", response=synth.http_response(b"z" * 50_000)),
        "tls12-rsa": synth.tls_session(folder, name="tls12", max_version="1.2", ciphers="AES128-GCM-SHA256"),
        "plain": synth.plain_session(folder, request=synth.DEFAULT_REQUEST,
                                     response=synth.http_response(b"p" * 5000)),
    }


def tshark(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    return subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=120)


def stderr_errors(proc: subprocess.CompletedProcess) -> list[str]:
    """tshark's stderr, without the notice it prints when run as root."""
    return [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("Running as user")]


@pytest.mark.parametrize("name", ["tls13", "tls12-rsa", "plain"])
def test_tshark_reads_it_without_warnings(captures, name: str):
    session = captures[name]
    proc = tshark("-r", str(session.pcap), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
                  "-q", "-z", "expert")

    assert proc.returncode == 0 and not stderr_errors(proc), proc.stderr
    assert "Errors (" not in proc.stdout and "Warnings (" not in proc.stdout, proc.stdout
    assert not BAD.search(proc.stdout), proc.stdout
    # The only notes are the FIN exchange.
    assert "Connection finish (FIN)" in proc.stdout


def test_tshark_sees_tls_and_http(captures):
    tls = tshark("-r", str(captures["tls13"].pcap), "-Y", "tls.handshake.type == 1",
                 "-T", "fields", "-e", "tls.handshake.extensions_server_name")
    assert tls.stdout.split() == ["server.lab.test"]
    http = tshark("-r", str(captures["plain"].pcap), "-Y", "http.request", "-T", "fields", "-e", "http.host")
    assert http.stdout.split() == ["server.lab.test"]


@pytest.mark.parametrize("name", ["tls13", "tls12-rsa", "plain"])
def test_dpkt_sees_the_three_way_handshake_and_the_fins(captures, name: str):
    session = captures[name]
    with open(session.pcap, "rb") as handle:
        frames = [(ts, dpkt.ethernet.Ethernet(buf)) for ts, buf in dpkt.pcap.Reader(handle)]
    tcp = [eth.data.data for _ts, eth in frames]
    syn, syn_ack, ack = tcp[:3]

    assert syn.flags == dpkt.tcp.TH_SYN and syn.ack == 0
    assert syn_ack.flags == dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK and syn_ack.ack == (syn.seq + 1) & 0xFFFFFFFF
    assert ack.flags == dpkt.tcp.TH_ACK and ack.seq == syn_ack.ack and ack.ack == (syn_ack.seq + 1) & 0xFFFFFFFF
    assert [t.flags & dpkt.tcp.TH_FIN for t in tcp[-3:]] == [dpkt.tcp.TH_FIN, dpkt.tcp.TH_FIN, 0]
    assert (syn.sport, syn.dport) == (session.client[1], session.server[1])
    assert 32768 <= session.client[1] <= 60999
    # Timestamps only go forward; no segment is bigger than the MSS allows.
    assert all(a[0] < b[0] for a, b in zip(frames, frames[1:]))
    largest = max(len(t.data) for t in tcp)
    assert largest <= SEGMENT
    if name == "tls13":                              # a 50 KB response fills whole segments
        assert largest == SEGMENT


@pytest.mark.parametrize("name", ["tls13", "tls12-rsa", "plain"])
def test_addresses_and_payload_bytes(captures, name: str):
    session = captures[name]
    packets = pcaputil.read(Path(session.pcap).read_bytes())

    assert {(p.src, p.dst) for p in packets} == {("10.77.0.10", "10.77.0.20"), ("10.77.0.20", "10.77.0.10")}
    c2s = b"".join(p.payload for p in packets if p.src == "10.77.0.10")
    s2c = b"".join(p.payload for p in packets if p.src == "10.77.0.20")
    if name == "plain":
        assert (c2s, s2c) == (session.request, session.response)
    else:
        assert c2s[:3] == b"\x16\x03\x01" and s2c[:3] == b"\x16\x03\x03"   # ClientHello, ServerHello records
        assert session.request not in c2s and b"s3cr3t" not in c2s             # the secret is not on the wire


def test_write_pcap_refuses_an_unknown_direction(tmp_path: Path):
    with pytest.raises(ValueError, match="direction"):
        synth.write_pcap(tmp_path / "x.pcap", ("10.77.0.10", 40000), ("10.77.0.20", 443), [("up", b"x")])


def test_ffdhe2048_is_a_safe_prime():
    p = synth.ffdhe2048_prime()
    assert p.bit_length() == 2048 and hex(p).startswith("0xffffffffffffffffadf85458a2bb4a9a")
    for n in (p, (p - 1) // 2):                      # Fermat tests with a few bases
        assert all(pow(base, n - 1, n) == 1 for base in (2, 3, 5, 7))
