"""pcapng with the NSS key log embedded (labctl.tls.pcapng), held to the reference writer and the oracle.

The reference is `editcap --inject-secrets tls,KEYLOG in.pcap out.pcapng`
(Wireshark 4.0): every block after the Section Header Block must be byte for
byte what it writes, the Decryption Secrets Block in the same place. The
oracle is tshark: it must open our file decrypted with NO options exactly as
it opens editcap's, and decryption_secrets must read back what editcap and
other writers embedded (tests/captures/pcapng_dsb_* and a QUIC capture
sanitized by TraceWrangler; CASES.md says how each was made).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl import capture, files, report
from labctl.cli import Output, main
from labctl.errors import CaptureError, UsageError
from labctl.tls import pcapng
from labctl.tls.pcapfile import CaptureFormatError
from tests import synth, tshark

CASES = Path(__file__).resolve().parent.parent / "captures"
APP = "labctl test"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} (wireshark-common) is not installed")
    return path


def editcap(*args: str | Path) -> None:
    subprocess.run([tool("editcap"), *map(str, args)], check=True, capture_output=True, timeout=60)


def blocks(data: bytes) -> list[tuple[int, int, str, int]]:
    return pcapng._blocks(data, "test")


def after_shb(data: bytes) -> bytes:
    """Everything after the first Section Header Block: what must equal editcap's."""
    return data[blocks(data)[0][1]:]


def block_types(data: bytes) -> list[int]:
    return [t for _, _, _, t in blocks(data)]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, text
    return text


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> dict[str, synth.Session]:
    tmp = tmp_path_factory.mktemp("pcapng")
    return {"tls13": synth.tls_session(tmp, name="n13"),
            "tls12": synth.tls_session(tmp, max_version="1.2", name="n12"),
            "tls12-rsa": synth.tls_session(tmp, max_version="1.2", ciphers="AES128-GCM-SHA256", name="nrsa")}


def nanosecond(pcap: Path, tmp: Path) -> Path:
    out = tmp / f"{pcap.stem}-ns.pcap"
    editcap("-F", "nsecpcap", pcap, out)
    assert out.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"
    return out


def big_endian(pcap: bytes) -> bytes:
    """The same classic pcap, written big-endian (as a SPARC or a PowerPC tcpdump would)."""
    magic, major, minor, zone, sigfigs, snaplen, network = struct.unpack_from("<IHHiIII", pcap, 0)
    out = [struct.pack(">IHHiIII", magic, major, minor, zone, sigfigs, snaplen, network)]
    pos = 24
    while pos < len(pcap):
        record = struct.unpack_from("<IIII", pcap, pos)
        out.append(struct.pack(">IIII", *record) + pcap[pos + 16:pos + 16 + record[2]])
        pos += 16 + record[2]
    return b"".join(out)


# -- the same file as editcap --inject-secrets ---------------------------------------------------

@pytest.mark.parametrize("name", ["tls13", "tls12", "tls12-rsa"])
@pytest.mark.parametrize("resolution", ["us", "ns"])
def test_every_block_after_the_section_header_is_editcaps(sessions, tmp_path, name, resolution):
    session = sessions[name]
    pcap = session.pcap if resolution == "us" else nanosecond(session.pcap, tmp_path)
    theirs = tmp_path / "editcap.pcapng"
    editcap("--inject-secrets", f"tls,{session.keylog}", pcap, theirs)
    ours = pcapng.to_pcapng(pcap.read_bytes(), session.keylog.read_text(), application=APP)
    assert after_shb(ours) == after_shb(theirs.read_bytes())
    # SHB, then the DSB before anything else, then the interface and one EPB per packet.
    count = len(tshark.fields(pcap, "frame", "frame.number"))
    assert block_types(ours) == [pcapng.SHB, pcapng.DSB, pcapng.IDB] + [pcapng.EPB] * count
    assert block_types(theirs.read_bytes()) == block_types(ours)
    if resolution == "ns":                      # if_tsresol 9: the nanoseconds are kept, not rounded
        assert tshark.fields(theirs, "frame", "frame.time_epoch") == tshark.fields(pcap, "frame", "frame.time_epoch")


def test_the_section_header_names_the_writer(sessions):
    ours = pcapng.to_pcapng(sessions["tls13"].pcap.read_bytes(), sessions["tls13"].keylog.read_text(),
                            application=APP)
    start, end, endian, _ = blocks(ours)[0]
    magic, major, minor, length = struct.unpack_from("<IHHq", ours, 8)
    assert (endian, magic, major, minor, length) == ("<", pcapng.BYTE_ORDER_MAGIC, 1, 0, -1)
    code, size = struct.unpack_from("<HH", ours, 24)
    assert (code, ours[28:28 + size]) == (pcapng.SHB_USERAPPL, APP.encode())


@pytest.mark.parametrize("name", ["tls13", "tls12", "tls12-rsa"])
def test_tshark_opens_it_decrypted_with_no_options_as_it_opens_editcaps(sessions, tmp_path, name):
    session = sessions[name]
    theirs, ours = tmp_path / "editcap.pcapng", tmp_path / "ours.pcapng"
    editcap("--inject-secrets", f"tls,{session.keylog}", session.pcap, theirs)
    ours.write_bytes(pcapng.to_pcapng(session.pcap.read_bytes(), session.keylog.read_text(), application=APP))
    expected = {"c2s": session.request, "s2c": session.response}
    assert tshark.decrypted_streams(ours, None) == expected
    assert tshark.decrypted_streams(theirs, None) == expected
    raw = ["-q", "-z", "follow,tls,raw,0"]
    out = [subprocess.run([tshark.require(), "-r", str(f), *raw], capture_output=True, check=True).stdout
           for f in (ours, theirs)]
    assert out[0] == out[1]
    # The DSB is what decrypts it: the same packets as a classic pcap, with no key log, show nothing.
    assert tshark.decrypted_streams(session.pcap, None) == {"c2s": b"", "s2c": b""}


def test_decryption_secrets_reads_editcaps_dsb(sessions, tmp_path):
    for session in sessions.values():
        theirs = tmp_path / f"{session.pcap.stem}.pcapng"
        editcap("--inject-secrets", f"tls,{session.keylog}", session.pcap, theirs)
        assert pcapng.decryption_secrets(theirs.read_bytes()) == session.keylog.read_text()


def test_round_trip(sessions):
    for session in sessions.values():
        keys = session.keylog.read_text()
        assert pcapng.decryption_secrets(pcapng.to_pcapng(session.pcap.read_bytes(), keys)) == keys


def test_no_key_log_no_dsb_and_otherwise_editcaps_pcapng(sessions, tmp_path):
    session = sessions["tls13"]
    theirs = tmp_path / "plain.pcapng"
    editcap("-F", "pcapng", session.pcap, theirs)
    for empty in ("", "\n  \n"):
        ours = pcapng.to_pcapng(session.pcap.read_bytes(), empty, application=APP)
        assert pcapng.DSB not in block_types(ours)
        assert after_shb(ours) == after_shb(theirs.read_bytes())
        assert pcapng.decryption_secrets(ours) == ""
    path = tmp_path / "ours.pcapng"
    path.write_bytes(ours)
    assert tshark.decrypted_streams(path, None) == {"c2s": b"", "s2c": b""}


def test_a_last_line_without_its_newline_gets_one(sessions, tmp_path):
    """The spec: every line of a TLSK DSB MUST be terminated. editcap copies the file as it is."""
    session = sessions["tls13"]
    text = session.keylog.read_text()
    assert text.endswith("\n")
    cut = tmp_path / "cut.keys"
    cut.write_text(text.rstrip("\n"))
    theirs = tmp_path / "editcap.pcapng"
    editcap("--inject-secrets", f"tls,{session.keylog}", session.pcap, theirs)
    ours = pcapng.to_pcapng(session.pcap.read_bytes(), cut.read_text(), application=APP)
    assert after_shb(ours) == after_shb(theirs.read_bytes())
    assert pcapng.decryption_secrets(ours) == text


def test_a_big_endian_pcap_gives_the_same_pcapng(sessions, tmp_path):
    session = sessions["tls12"]
    little = session.pcap.read_bytes()
    big = big_endian(little)
    assert big[:4] == b"\xa1\xb2\xc3\xd4"
    keys = session.keylog.read_text()
    assert pcapng.to_pcapng(big, keys, application=APP) == pcapng.to_pcapng(little, keys, application=APP)
    path = tmp_path / "big.pcap"
    path.write_bytes(big)
    theirs = tmp_path / "editcap.pcapng"
    editcap("--inject-secrets", f"tls,{session.keylog}", path, theirs)
    assert after_shb(pcapng.to_pcapng(big, keys)) == after_shb(theirs.read_bytes())


def raw_ip(pcap: bytes) -> bytes:
    """PCAP's frames without their Ethernet header, as LINKTYPE_RAW (101): a second link type."""
    out = [pcap[:20] + struct.pack("<I", 101)]
    pos = 24
    while pos < len(pcap):
        seconds, fraction, incl, orig = struct.unpack_from("<IIII", pcap, pos)
        frame = pcap[pos + 16:pos + 16 + incl]
        out.append(struct.pack("<IIII", seconds, fraction, incl - 14, orig - 14) + frame[14:])
        pos += 16 + incl
    return b"".join(out)


def test_a_pcapng_keeps_its_interfaces_of_two_link_types(sessions, tmp_path):
    """pcapng in: the DSB goes after its SHB; every block it had is kept as it was."""
    one, two = sessions["tls13"], sessions["tls12"]
    raw = tmp_path / "raw.pcap"
    raw.write_bytes(raw_ip(two.pcap.read_bytes()))
    merged = tmp_path / "merged.pcapng"
    subprocess.run([tool("mergecap"), "-F", "pcapng", "-w", str(merged), str(one.pcap), str(raw)], check=True,
                   capture_output=True, timeout=60)
    data = merged.read_bytes()
    keys = one.keylog.read_text() + two.keylog.read_text()
    ours = pcapng.to_pcapng(data, keys)
    assert block_types(ours).count(pcapng.IDB) == 2
    shb_end = blocks(data)[0][1]
    dsb = pcapng.secrets_block(keys)
    assert ours == data[:shb_end] + dsb + data[shb_end:]
    path = tmp_path / "ours.pcapng"
    path.write_bytes(ours)
    assert sorted({row[0] for row in tshark.fields(path, "tls", "frame.interface_id")}) == ["0", "1"]
    streams = {row[0]: row[1] for row in tshark.fields(path, "tls.handshake.type == 1", "tcp.stream",
                                                        "frame.interface_id")}
    for stream, session in ((s, one if i == "0" else two) for s, i in streams.items()):
        assert tshark.decrypted_streams(path, None, stream=int(stream)) == {"c2s": session.request,
                                                                            "s2c": session.response}
    assert pcapng.decryption_secrets(ours) == keys
    assert pcapng.to_pcapng(data, "") == data


# -- the committed inputs: tshark's values ---------------------------------------------------------

def test_editcaps_file_committed(tmp_path):
    data = (CASES / "pcapng_dsb_editcap_tls13.pcapng").read_bytes()
    assert pcapng.decryption_secrets(data) == (CASES / "pcapng_dsb_editcap_tls13.keylog").read_text()
    streams = tshark.decrypted_streams(CASES / "pcapng_dsb_editcap_tls13.pcapng", None)
    assert (len(streams["c2s"]), len(streams["s2c"])) == (83, 160)        # tshark 4.0, no options
    assert b"Cookie: session=s3cr3t-dsb-editcap-13\r\n" in streams["c2s"]


def test_a_big_endian_pcapng_with_two_tlsk_dsbs_an_ssh_one_and_other_blocks():
    """Big-endian, the key log split over two TLSK DSBs (the second after three packets), an SSH key log
    DSB, a Custom Block and a Name Resolution Block: only the TLSK text comes out, in file order."""
    path = CASES / "pcapng_dsb_bigendian_tls12.pcapng"
    data = path.read_bytes()
    assert data[8:12] == b"\x1a\x2b\x3c\x4d"
    assert block_types(data)[:7] == [pcapng.SHB, pcapng.DSB, pcapng.IDB, 0x00000BAD, 4, pcapng.DSB, pcapng.EPB]
    assert block_types(data).count(pcapng.DSB) == 3
    assert pcapng.decryption_secrets(data) == (CASES / "pcapng_dsb_bigendian_tls12.keylog").read_text()
    streams = tshark.decrypted_streams(path, None)
    assert (len(streams["c2s"]), len(streams["s2c"])) == (85, 160)        # tshark 4.0, no options
    assert b"Cookie: session=s3cr3t-dsb-bigendian-12\r\n" in streams["c2s"]


QUIC = CASES / "pcapngparser_chrome-cloudflare-quic-with-secrets.pcapng"


def test_a_third_partys_quic_capture_with_secrets(tmp_path):
    """Written by another tool (sanitized by TraceWrangler): two QUIC connections' TLS 1.3 secrets.
    tshark decrypts QUIC frames in 34 frames with its DSB, 3 without (the Initial packets only); the same
    file with the DSB removed and our text given as tls.keylog_file decrypts the same 34."""
    data = QUIC.read_bytes()
    text = pcapng.decryption_secrets(data)
    labels = [line.split()[0] for line in text.splitlines()]
    assert labels == ["CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                      "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"] * 2
    start, end, _, kind = blocks(data)[1]
    assert kind == pcapng.DSB
    stripped, keys = tmp_path / "stripped.pcapng", tmp_path / "quic.keys"
    stripped.write_bytes(data[:start] + data[end:])
    keys.write_text(text)

    def frames(path: Path, *options: str) -> list[list[str]]:
        return tshark.fields(path, "quic.frame_type", "frame.number", "quic.frame_type", options=options)

    assert len(frames(QUIC)) == 34
    assert len(frames(stripped)) == 3
    assert frames(stripped, "-o", f"tls.keylog_file:{keys}") == frames(QUIC)


@pytest.mark.parametrize("name, message", [
    ("pcapng_dsb_cut.pcapng", r"is cut short: block 2 \(type 0x0000000a\) at offset 108 claims 1012 bytes, 192 are"),
    ("pcapng_dsb_overlong.pcapng", r"the Decryption Secrets Block at offset 108 claims 996 bytes of secrets in a "
                                   r"block of 1012"),
])
def test_damaged_committed_inputs(name, message):
    """tshark 4.0 reads 0 packets of each: 'appears to have been cut short in the middle of a packet'."""
    with pytest.raises(CaptureFormatError, match=message) as caught:
        pcapng.decryption_secrets((CASES / name).read_bytes(), name=name)
    assert one_line(caught.value).startswith(name)
    proc = subprocess.run([tshark.require(), "-r", str(CASES / name)], capture_output=True, text=True)
    assert "cut short in the middle of a packet" in proc.stderr


# -- reading: any byte order, any block, never past one -----------------------------------------------

def test_a_classic_pcap_has_no_secrets_and_a_text_file_is_refused(sessions):
    assert pcapng.decryption_secrets(sessions["tls13"].pcap.read_bytes()) == ""
    with pytest.raises(CaptureFormatError, match="notes.txt is not a pcap or pcapng file") as caught:
        pcapng.decryption_secrets(b"these are not the packets you are looking for", name="notes.txt")
    one_line(caught.value)


def _editcaps(sessions, tmp_path) -> bytes:
    session = sessions["tls13"]
    out = tmp_path / "e.pcapng"
    editcap("--inject-secrets", f"tls,{session.keylog}", session.pcap, out)
    return out.read_bytes()


def test_other_secrets_types_and_unknown_versions_are_passed_over(sessions):
    ssh = pcapng._block(pcapng.DSB, struct.pack("<II", 0x5353484B, 4) + b"abc\n")
    pcap = sessions["tls13"].pcap.read_bytes()
    plain = pcapng.to_pcapng(pcap, "")
    end = blocks(plain)[0][1]
    assert pcapng.decryption_secrets(plain[:end] + ssh + plain[end:]) == ""
    # A section of major version 2 cannot be read as version 1's: its DSB is skipped, the next section's read.
    v2 = bytearray(pcapng.to_pcapng(pcap, "CLIENT_RANDOM 00 11\n"))
    struct.pack_into("<H", v2, 12, 2)
    keys = sessions["tls13"].keylog.read_text()
    assert pcapng.decryption_secrets(bytes(v2) + pcapng.to_pcapng(pcap, keys)) == keys


def test_two_dsbs_never_run_together_on_one_line():
    first = pcapng._block(pcapng.DSB, struct.pack("<II", pcapng.TLS_KEY_LOG, 5) + b"A 1 2\0\0\0")    # no newline
    data = pcapng.section_header() + first + pcapng.secrets_block("B 3 4\n")
    assert pcapng.decryption_secrets(data) == "A 1 2\nB 3 4\n"


def _damage(data: bytes, how: str) -> bytes:
    d = bytearray(data)
    shb = struct.unpack_from("<I", d, 4)[0]
    if how == "bom":
        d[8:12] = b"\x00\x11\x22\x33"
    elif how == "not a multiple of 4":
        struct.pack_into("<I", d, shb + 4, struct.unpack_from("<I", d, shb + 4)[0] + 2)
    elif how == "under 12":
        struct.pack_into("<I", d, shb + 4, 8)
    elif how == "trailer":
        dsb = struct.unpack_from("<I", d, shb + 4)[0]
        struct.pack_into("<I", d, shb + dsb - 4, dsb + 4)
    elif how == "past the end":
        struct.pack_into("<I", d, shb + 4, len(d) + 4)
    elif how == "short dsb":
        d = d[:shb] + bytearray(pcapng._block(pcapng.DSB, b"\0\0\0\0")) + d[shb:]
    elif how == "short shb":
        d = bytearray(pcapng._block(pcapng.SHB, struct.pack("<IHH", pcapng.BYTE_ORDER_MAGIC, 1, 0))) + d[shb:]
    return bytes(d)


@pytest.mark.parametrize("how, message", [
    ("bom", "Section Header Block at offset 0 has no byte-order magic"),
    ("not a multiple of 4", "block 2 .type 0x0000000a. at offset 108 has a total length of 1014 bytes"),
    ("under 12", "has a total length of 8 bytes"),
    ("trailer", "says 1012 bytes at its start and 1016 at its end"),
    ("past the end", "is cut short: block 2"),
    ("short dsb", "Decryption Secrets Block at offset 108 is 16 bytes, shorter than its 20-byte minimum"),
    ("short shb", "Section Header Block at offset 0 is 20 bytes, shorter than its 28-byte minimum"),
])
def test_a_damaged_block_is_one_line(sessions, tmp_path, how, message):
    with pytest.raises(CaptureFormatError, match=message) as caught:
        pcapng.decryption_secrets(_damage(_editcaps(sessions, tmp_path), how), name="x.pcapng")
    assert one_line(caught.value).startswith("x.pcapng")


def test_every_cut_of_the_file_is_read_to_its_last_whole_block_or_refused(sessions, tmp_path):
    data = _editcaps(sessions, tmp_path)
    ends = {end for _, end, _, _ in blocks(data)}
    keys = sessions["tls13"].keylog.read_text()
    for size in range(24, len(data)):
        try:
            text = pcapng.decryption_secrets(data[:size])
        except CaptureFormatError as exc:
            one_line(exc)
            assert size not in ends
        else:
            assert size in ends and text == (keys if size >= blocks(data)[1][1] else "")


FUZZ = settings(max_examples=1000, deadline=2000, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), min_size=1, max_size=8))
def test_bytes_flipped_anywhere_give_secrets_or_one_line(flips):
    data = bytearray((CASES / "pcapng_dsb_editcap_tls13.pcapng").read_bytes())
    for where, value in flips:
        data[where % len(data)] = value
    try:
        text = pcapng.decryption_secrets(bytes(data))
    except CaptureFormatError as exc:
        one_line(exc)
    else:
        assert len(text) <= len(data)


# -- writing: a pcap that is not one ----------------------------------------------------------------

def test_a_pcap_cut_short_or_not_a_capture_is_refused(sessions):
    pcap = sessions["tls13"].pcap.read_bytes()
    with pytest.raises(CaptureFormatError, match="x.pcap is cut short: packet 16 claims") as caught:
        pcapng.to_pcapng(pcap[:-10], "", name="x.pcap")
    one_line(caught.value)
    with pytest.raises(CaptureFormatError, match="ends inside a packet record header after 16 whole packets"):
        pcapng.to_pcapng(pcap + b"\0" * 7, "", name="x.pcap")
    with pytest.raises(CaptureFormatError, match="not a pcap or pcapng file"):
        pcapng.to_pcapng(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", "")


def test_a_key_log_that_is_not_text_is_a_usage_error(sessions):
    with pytest.raises(UsageError, match="the key log is not text"):
        pcapng.to_pcapng(sessions["tls13"].pcap.read_bytes(), "CLIENT_RANDOM \udcff\n")


# -- capture.save_capture: the file on disk ----------------------------------------------------------

@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize("name, fmt, expected", [
    ("tls.pcapng", None, "pcapng"), ("TLS.PCAPNG", None, "pcapng"), ("tls.pcap", None, "pcap"),
    ("tls.cap", None, "pcap"), ("tls.cap", "pcapng", "pcapng"), ("tls", "pcapng", "pcapng")])
def test_save_capture_by_suffix_or_format_0600(sessions, tmp_path, loose_umask, name, fmt, expected):
    session = sessions["tls13"]
    pcap, keys = session.pcap.read_bytes(), session.keylog.read_text()
    dest = tmp_path / name
    dest.write_bytes(b"an older world-readable file")
    dest.chmod(0o644)
    saved = capture.save_capture(pcap, dest, keys, fmt)
    assert (saved.path, saved.format, saved.keys_embedded) == (dest, expected, expected == "pcapng")
    assert mode(dest) == 0o600
    written = dest.read_bytes()
    if expected == "pcapng":
        assert after_shb(written) == after_shb(pcapng.to_pcapng(pcap, keys))
        assert pcapng.decryption_secrets(written) == keys
        assert "NSS key log embedded" in saved.note("-")
    else:
        assert written == pcap and saved.note("-") == str(dest)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_capture_without_a_key_log_says_so(sessions, tmp_path):
    saved = capture.save_capture(sessions["tls13"].pcap.read_bytes(), tmp_path / "m.pcapng", "")
    assert (saved.format, saved.keys_embedded) == ("pcapng", False)
    assert pcapng.DSB not in block_types((tmp_path / "m.pcapng").read_bytes())
    assert saved.note("`run mitm` keeps no key log") == (
        f"{tmp_path / 'm.pcapng'} (no key log embedded: `run mitm` keeps no key log, so whatever TLS it holds is "
        "not decryptable from the file alone)")


def test_an_interrupted_save_leaves_nothing(sessions, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        capture.save_capture(sessions["tls13"].pcap.read_bytes(), tmp_path / "x.pcapng",
                             sessions["tls13"].keylog.read_text())
    assert list(tmp_path.iterdir()) == []


def test_a_wire_pcap_that_cannot_be_converted_is_a_capture_error_not_bad_input(tmp_path):
    with pytest.raises(CaptureError, match="cannot write .*x.pcapng as pcapng: the wire's capture is cut short"):
        capture.save_capture(b"\xd4\xc3\xb2\xa1" + b"\0" * 20 + b"\0" * 5, tmp_path / "x.pcapng", "")
    assert list(tmp_path.iterdir()) == []


def test_read_keylog_takes_a_key_log_and_refuses_what_is_not_one(sessions, tmp_path):
    keys = sessions["tls13"].keylog
    assert capture.read_keylog(str(keys)) == keys.read_text()
    for what, data, message in (("pcap", sessions["tls13"].pcap.read_bytes(), "is not text"),
                                ("notes", b"remember the milk\n", "holds no key log line"),
                                ("empty", b"", "is empty")):
        path = tmp_path / what
        path.write_bytes(data)
        with pytest.raises(UsageError, match=message) as caught:
            capture.read_keylog(str(path))
        one_line(caught.value)
    with pytest.raises(UsageError, match="is a folder"):
        capture.read_keylog(str(tmp_path))


# -- the command line, before anything reaches the lab --------------------------------------------------

def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        status = main(list(argv), Output(out, err))
    except SystemExit as exc:           # argparse's own errors, on sys.stderr
        status = int(exc.code or 0)
    real = capsys.readouterr()
    return status, out.getvalue() + real.out, err.getvalue() + real.err


@pytest.mark.parametrize("argv, message", [
    (["run", "tls", "--pcap", "{tmp}/x.pcap", "--pcap-format", "pcapng"],
     "ends in .pcap but --pcap-format is pcapng: give one or the other"),
    (["run", "tls", "--pcap", "{tmp}/x.pcapng", "--pcap-format", "pcap"],
     "ends in .pcapng but --pcap-format is pcap"),
    (["run", "tls", "--pcap-format", "pcapng"], "--pcap-format pcapng says how --pcap writes the capture: give --pcap"),
    (["run", "tls", "--pcap", "{tmp}/x.pcapng", "--pcap-format", "pcapnp"], "invalid choice: 'pcapnp'"),
    (["capture", "start", "demo", "--keylog", "{tmp}/k"], "--keylog belongs to capture stop and get"),
    (["capture", "stop", "demo", "--keylog", "{tmp}/k"], "--keylog embeds a key log in a pcapng: give --out NAME"),
    (["capture", "stop", "demo", "--out", "{tmp}/x.pcap", "--keylog", "{tmp}/k"],
     r"give --out NAME.pcapng too \(not \S*/x.pcap\)"),
    (["capture", "get", "demo", "--out", "{tmp}/x.pcapng", "--keylog", "{tmp}/notes"], "holds no key log line"),
    (["capture", "stop", "demo", "--out", "{tmp}/x.pcapng", "--keylog", "{tmp}/none"], "No such file"),
])
def test_bad_pcapng_options_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "notes").write_text("remember the milk\n")
    status, out, err = run_cli(capsys, "--project", "i13pcapng-never-up", *[a.format(tmp=tmp_path) for a in argv])
    assert status == 2 and out == "", err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]          # nothing written


# -- the report: NAME.pcapng beside the page where the scenario kept a key log ---------------------------

def test_the_report_links_a_pcapng_with_the_key_log_inside(sessions, tmp_path):
    from tests.unit.test_report import LANES, _result

    tls = _result("tls", sessions["tls13"], sessions["tls13"].keylog.read_text())
    plain = _result("plaintext", synth.plain_session(tmp_path, request=b"GET / HTTP/1.1\r\n\r\n",
                                                     response=synth.DEFAULT_RESPONSE))
    out = tmp_path / "out"
    out.mkdir()
    (out / "plaintext.pcapng").write_bytes(b"an earlier report's")       # stale: removed
    index = report.write_report([tls, plain], out, LANES, owned=report.report_files(["tls", "plaintext"]))
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "index.json", "plaintext.pcap", "tls.keylog",
                                                     "tls.pcap", "tls.pcapng"]
    for path in out.iterdir():
        assert mode(path) == 0o600, path
    ng = out / "tls.pcapng"
    assert pcapng.decryption_secrets(ng.read_bytes()) == tls.keylog
    assert tshark.decrypted_streams(ng, None) == {"c2s": sessions["tls13"].request,
                                                  "s2c": sessions["tls13"].response}
    files_of = {s["scenario"]: s["files"] for s in json.loads((out / "index.json").read_text())["scenarios"]}
    assert files_of == {"tls": {"capture": "tls.pcap", "key log": "tls.keylog",
                                report.CAPTURE_WITH_KEYS: "tls.pcapng"},
                        "plaintext": {"capture": "plaintext.pcap"}}
    html = index.read_text()
    assert '<a href="tls.pcapng">' in html and "<code>wireshark tls.pcapng</code>" in html
    assert "<code>wireshark plaintext.pcap</code>" in html


def test_a_report_whose_capture_cannot_be_converted_fails_whole(sessions, tmp_path):
    from tests.unit.test_report import LANES, _result

    tls = _result("tls", sessions["tls13"], sessions["tls13"].keylog.read_text())
    broken = dataclasses.replace(tls, pcap=tls.pcap[:-10])
    with pytest.raises(report.ReportError, match="cannot write tls.pcapng: the capture of tls is cut short") as caught:
        report.write_report([broken], tmp_path / "out", LANES)
    assert caught.value.status == 1
    assert list((tmp_path / "out").iterdir()) == []


def test_a_sigint_at_any_line_of_saving_a_pcapng_leaves_no_partial_file(sessions, tmp_path):
    """The signal sent for real at each line save_capture runs (tests/unit/test_interrupted_writes.py's
    harness): the conversion, the write and the rename leave either the whole file or nothing."""
    from tests.unit.test_interrupted_writes import _dry, _every_line

    pcap, keys = sessions["tls13"].pcap.read_bytes(), sessions["tls13"].keylog.read_text()

    def action(folder: Path) -> None:
        capture.save_capture(pcap, _dry(folder) / "tls.pcapng", keys)
    assert _every_line(tmp_path, action) > 0
    for folder in tmp_path.glob("at-*"):
        written = folder / "tls.pcapng"
        assert not written.exists() or pcapng.decryption_secrets(written.read_bytes()) == keys


def test_a_key_log_from_another_session_is_embedded_and_said_to_open_nothing(sessions, tmp_path):
    """New-user tryout: `capture stop --out X.pcapng --keylog K` with K from another session said the
    file opens decrypted; tshark decrypted nothing. Now the line says how many connections it opens."""
    other = sessions["tls12"].keylog.read_text()
    saved = capture.save_capture(sessions["tls13"].pcap.read_bytes(), tmp_path / "x.pcapng", other)
    assert saved.keys_embedded and (saved.tls_connections, saved.connections_with_keys) == (1, 0)
    assert "secrets for 0 of its 1 TLS connections" in saved.note("")
    assert tshark.decrypted_streams(tmp_path / "x.pcapng", None) == {"c2s": b"", "s2c": b""}
    right = capture.save_capture(sessions["tls13"].pcap.read_bytes(), tmp_path / "y.pcapng",
                                 sessions["tls13"].keylog.read_text())
    assert (right.tls_connections, right.connections_with_keys) == (1, 1)
    assert "open it decrypted" in right.note("")
