"""Key logs read as Wireshark reads them, and decryption of the real-world cases #13 names.

Each case is a committed input (tests/captures, CASES.md says where each comes
from): its expected byte counts are tshark 4.0's, asserted as constants, and
the bytes themselves are compared with what tshark decrypts from the same
file, live, where tshark is installed (tests/tshark.py).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.tls import decrypt
from labctl.tls.analyzer import TlsConnection, analyze_file
from labctl.tls.decrypt import (SESSION_ID, Decryption, DecryptError, KeyLog, KeyLogError, Record, decrypt_connection,
                                decrypt_records, read_keylog)
from labctl.tls.records import walk_records
from tests import tshark

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
KEYLOGS = CAPTURES / "keylogs"


# --- plumbing ---------------------------------------------------------------------

def records_of(connection: TlsConnection) -> list[Record]:
    return [Record(r.direction, r.content_type, r.version, r.fragment) for r in connection.records]


def decrypted(pcap: Path, keys: Path) -> list[Decryption]:
    """Each TLS connection of PCAP as the analyzer finds it, decrypted with the key log file KEYS."""
    keylog = read_keylog(keys)
    return [decrypt_records(records_of(c), keylog) for c in analyze_file(pcap).tls]


def both(result: Decryption) -> dict[str, bytes]:
    return {d: result.application_data(d) for d in ("c2s", "s2c")}


def sizes(result: Decryption) -> dict[str, int]:
    return {d: len(v) for d, v in both(result).items()}


def tshark_records(pcap: Path, keys: Path, stream: int, server_port: int) -> dict[str, list[bytes]]:
    """What tshark decrypts, one entry per record (tests/tshark.py follow_records)."""
    return tshark.follow_records(pcap, keys, stream, server_port)


def ethernet_copy(cooked: Path, out: Path) -> Path:
    """The frames of a Linux cooked capture (LINKTYPE_LINUX_SLL, 16-byte header) rewritten as Ethernet:
    the same IP packets, for as long as the analyzer does not read cooked captures itself."""
    with open(cooked, "rb") as src, open(out, "wb") as dst:
        capture = dpkt.pcap.Reader(src)
        assert capture.datalink() == dpkt.pcap.DLT_LINUX_SLL
        writer = dpkt.pcap.Writer(dst, snaplen=capture.snaplen, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in capture:
            # SLL: packet type (2), ARPHRD (2), address length (2), address (8), protocol (2)
            writer.writepkt(b"\x02" + bytes(5) + b"\x02" + bytes(4) + b"\x01" + frame[14:16] + frame[16:], ts)
    return out


def frames_of(pcap: Path) -> list[bytes]:
    """Every frame of a pcap or pcapng file, as dpkt reads it."""
    with open(pcap, "rb") as handle:
        pcapng = handle.read(4) == b"\n\r\r\n"
        handle.seek(0)
        capture = dpkt.pcapng.Reader(handle) if pcapng else dpkt.pcap.Reader(handle)
        return [frame for _ts, frame in capture]


def records_across_holes(pcap: Path, server_port: int) -> list[Record]:
    """Both directions' records in the order the frames completing them came, each direction reassembled
    with its holes kept apart: after a hole the records resume at the first offset from which whole
    records follow one another (three at least), and the first of them is marked after_gap; a record a
    hole cuts is kept with what was captured of it and how many bytes are missing. (The
    analyzer's own reassembly does this in #13's TCP part; this stands in for it here, so that the
    decryptor is tested on the records a hole leaves.)"""
    segments: dict[str, dict[int, tuple[int, bytes]]] = {"c2s": {}, "s2c": {}}
    isn: dict[str, int] = {}
    for number, frame in enumerate(frames_of(pcap), 1):
        tcp = dpkt.ethernet.Ethernet(frame).data.data
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        direction = "s2c" if tcp.sport == server_port else "c2s"
        if tcp.flags & dpkt.tcp.TH_SYN:
            isn[direction] = tcp.seq + 1
        if tcp.data:
            segments[direction].setdefault(tcp.seq - isn[direction], (number, bytes(tcp.data)))
    found: list[tuple[int, int, Record]] = []          # (frame completing it, order, record)
    for direction, by_offset in segments.items():
        runs: list[tuple[bytearray, list[tuple[int, int]]]] = []     # bytes, and (where in them, frame)
        end = -1
        for offset in sorted(by_offset):
            number, payload = by_offset[offset]
            if offset <= end:
                data, pieces = runs[-1]
                pieces.append((len(data), number))
                data += payload[end - offset:]
            else:
                runs.append((bytearray(payload), [(0, number)]))
            end = max(end, offset + len(payload))
        for n, (data, pieces) in enumerate(runs):
            run = bytes(data)
            start = 0 if n == 0 else next(o for o in range(len(run)) if len(walk_records(run, o)) >= 3)
            headers = walk_records(run, start)
            for i, header in enumerate(headers):
                frame = max(number for at, number in pieces if at < header.end)
                found.append((frame, len(found), Record(direction, header.content_type, header.version,
                                                        run[header.start:header.end], after_gap=n > 0 and i == 0)))
            end_of_run = headers[-1].end if headers else start
            if n + 1 < len(runs) and len(run) - end_of_run >= 5:         # the record the next hole cuts
                length = int.from_bytes(run[end_of_run + 3:end_of_run + 5], "big")
                fragment = run[end_of_run + 5:]
                found.append((pieces[-1][1], len(found), Record(
                    direction, run[end_of_run], int.from_bytes(run[end_of_run + 1:end_of_run + 3], "big"),
                    fragment, missing=length - len(fragment))))
    return [record for _frame, _order, record in sorted(found, key=lambda f: (f[0], f[1]))]


# --- key logs read as Wireshark reads them ------------------------------------------

RANDOM = bytes(range(32))
MASTER = bytes([0xAB]) * 48
GOOD = f"CLIENT_RANDOM {RANDOM.hex()} {MASTER.hex()}"


def test_every_nss_and_wireshark_label_is_read():
    pms = bytes([0x03, 0x03]) + bytes(46)
    text = "\n".join([
        GOOD,
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {RANDOM.hex()} {'11' * 32}",
        f"SERVER_HANDSHAKE_TRAFFIC_SECRET {RANDOM.hex()} {'22' * 48}",
        f"CLIENT_TRAFFIC_SECRET_0 {RANDOM.hex()} {'33' * 32}",
        f"SERVER_TRAFFIC_SECRET_0 {RANDOM.hex()} {'44' * 32}",
        f"EXPORTER_SECRET {RANDOM.hex()} {'55' * 32}",
        f"EARLY_EXPORTER_SECRET {RANDOM.hex()} {'66' * 32}",
        f"CLIENT_EARLY_TRAFFIC_SECRET {RANDOM.hex()} {'77' * 32}",
        f"RSA 0102030405060708 {pms.hex()}",
        f"PMS_CLIENT_RANDOM {RANDOM.hex()} {pms.hex()}",
        f"RSA Session-ID:{'99' * 32} Master-Key:{MASTER.hex()}",
    ])
    log = KeyLog.parse(text)
    assert log.entries == 11 and log.skipped == ()
    assert log.secrets[("RSA", bytes.fromhex("0102030405060708"))] == pms
    assert log.secrets[("PMS_CLIENT_RANDOM", RANDOM)] == pms
    assert log.secrets[(SESSION_ID, bytes([0x99]) * 32)] == MASTER
    assert log.secrets[("SERVER_HANDSHAKE_TRAFFIC_SECRET", RANDOM)] == bytes([0x22]) * 48


def test_bom_crlf_comments_and_blank_lines_are_read():
    text = f"\ufeff{GOOD}\r\n# a comment\r\n\r\n   \r\n  {GOOD.replace('CLIENT_RANDOM', 'CLIENT_TRAFFIC_SECRET_0')}  \r\n"
    log = KeyLog.parse(text)
    assert log.entries == 2 and log.skipped == ()
    assert log.labels(RANDOM) == {"CLIENT_RANDOM", "CLIENT_TRAFFIC_SECRET_0"}


@pytest.mark.parametrize("joint", ["", " ", "\t"])
def test_two_entries_run_together_on_one_line_are_both_read(joint: str):
    other = bytes(range(32, 64))
    text = (f"EARLY_EXPORTER_SECRET {RANDOM.hex()} {'ea' * 32}{joint}EXPORTER_SECRET {RANDOM.hex()} {'ee' * 32}"
            f"{joint}CLIENT_RANDOM {other.hex()} {MASTER.hex()}")
    log = KeyLog.parse(text)
    assert log.entries == 3 and log.skipped == ()
    assert log.secrets[("EARLY_EXPORTER_SECRET", RANDOM)] == bytes([0xEA]) * 32     # not cut at "EA" of EARLY
    assert log.secrets[("EXPORTER_SECRET", RANDOM)] == bytes([0xEE]) * 32
    assert log.secrets[("CLIENT_RANDOM", other)] == MASTER


@pytest.mark.parametrize("line, reason", [
    ("hello world", "not an NSS key log entry"),
    ("SSLKEYLOGFILE=/tmp/keys.txt", "not an NSS key log entry"),
    ("\x00\x01\x02 binary garbage \xff", "not an NSS key log entry"),
    (f"client_random {RANDOM.hex()} {MASTER.hex()}", "unknown label 'client_random'"),
    (f"SOME_NEW_SECRET {RANDOM.hex()} {MASTER.hex()}", "unknown label 'SOME_NEW_SECRET'"),
    ("CLIENT_RANDOM 00112233", "incomplete"),
    (f"CLIENT_RANDOM {'00' * 32} {'zz' * 48}", "the secret is not hex"),
    (f"CLIENT_RANDOM {'00' * 32} abc", "the secret is not hex"),
    (f"CLIENT_RANDOM {'0g' * 32} {MASTER.hex()}", "the client random is not hex"),
    (f"CLIENT_RANDOM {'00' * 31} {MASTER.hex()}", "the client random is 31 bytes, not 32"),
    (f"CLIENT_RANDOM {'00' * 32} {'ab' * 47}", "master secret is 48 bytes, not 47"),
    (f"RSA 01020304 {'03' * 48}", "first 8 bytes of the encrypted pre-master secret, not 4"),
    (f"RSA Session-ID:{'99' * 32} Master-Key:{'ab' * 40}", "the master key is 40 bytes, not 48"),
    (f"RSA Session-ID:{'99' * 32}", "not in Wireshark's 'RSA Session-ID:<hex> Master-Key:<hex>' form"),
])
def test_a_line_that_cannot_be_used_is_skipped_counted_and_said(line: str, reason: str):
    log = KeyLog.parse(f"# header\n{GOOD}\n{line}\n{GOOD.replace('CLIENT_RANDOM', 'EXPORTER_SECRET')}\n", "keys.txt")
    assert log.entries == 2 and log.secrets[("CLIENT_RANDOM", RANDOM)] == MASTER
    [skipped] = log.skipped
    assert (skipped.source, skipped.line) == ("keys.txt", 3)
    assert reason in skipped.reason
    assert len(skipped.text) <= 60 and "\n" not in skipped.reason


def test_text_after_an_entry_is_reported_and_the_entry_used():
    log = KeyLog.parse(f"{GOOD} trailing words\n{GOOD.replace('CLIENT_RANDOM', 'EXPORTER_SECRET')} # a note\n")
    assert log.entries == 2
    [skipped] = log.skipped
    assert (skipped.line, skipped.text) == (1, "trailing words") and "the entry is used" in skipped.reason


def test_a_later_entry_replaces_an_earlier_one_as_in_wireshark():
    log = KeyLog.parse(f"{GOOD}\nCLIENT_RANDOM {RANDOM.hex()} {'cd' * 48}\n")
    assert log.secrets[("CLIENT_RANDOM", RANDOM)] == bytes([0xCD]) * 48 and log.entries == 2


def test_merged_key_logs_keep_both_sources_skipped_lines():
    a = KeyLog.parse(f"{GOOD}\nnonsense\n", "keys.txt")
    b = KeyLog.parse("oops\n", "the capture's Decryption Secrets Block")
    merged = a.merged(b)
    assert merged.entries == 1 and [(s.source, s.line) for s in merged.skipped] == [
        ("keys.txt", 2), ("the capture's Decryption Secrets Block", 1)]


def test_a_utf16_key_log_from_windows_powershell_is_read(tmp_path: Path):
    path = tmp_path / "keys.txt"
    path.write_bytes(f"# PowerShell's Out-File\r\n{GOOD}\r\n".encode("utf-16"))      # a BOM, then UTF-16LE
    assert read_keylog(path).secrets == {("CLIENT_RANDOM", RANDOM): MASTER}


@pytest.mark.parametrize("content, message", [
    (b"", "--keylog {path} is empty"),
    (b"# SSL/TLS secrets log file\n\n# nothing else\n", "holds no key log entry (only blank lines and comments)"),
    (b"hello\nworld\n", "holds no usable key log entry: 2 line(s) skipped, the first (line 1) because: not an NSS"),
    (bytes(range(256)) * 4, "holds no usable key log entry"),
])
def test_a_key_log_with_nothing_usable_is_one_line(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "keys.txt"
    path.write_bytes(content)
    with pytest.raises(KeyLogError, match=message.format(path=path).replace("(", r"\(").replace(")", r"\)")) as error:
        read_keylog(path)
    assert "\n" not in str(error.value) and error.value.status == 2


def test_a_missing_key_log_is_one_line(tmp_path: Path):
    with pytest.raises(KeyLogError, match=f"--keylog: cannot read {tmp_path}/none.txt: No such file"):
        read_keylog(tmp_path / "none.txt")


# --- the cases: key logs --------------------------------------------------------------

NSS_EACH = {"c2s": 32, "s2c": 1777}          # tshark: 1809 bytes a session (nss_sll.pcap, stream 0 and 1)


def test_bom_utf8_key_log_decrypts_both_sessions(tmp_path: Path):
    """keylogs/bom_utf8.txt: a UTF-8 BOM before OpenSSL's comment line; Wireshark reads the file whole."""
    pcap = ethernet_copy(CAPTURES / "nss_sll.pcap", tmp_path / "nss_ethernet.pcap")
    keys = KEYLOGS / "bom_utf8.txt"
    assert read_keylog(keys).skipped == ()
    results = decrypted(pcap, keys)
    assert [sizes(r) for r in results] == [NSS_EACH, NSS_EACH]
    for stream, result in enumerate(results):
        assert both(result) == tshark.decrypted_streams(CAPTURES / "nss_sll.pcap", keys, stream)


def test_bom_utf8_key_log_on_the_cooked_capture_itself():
    keys = KEYLOGS / "bom_utf8.txt"
    results = decrypted(CAPTURES / "nss_sll.pcap", keys)
    assert [sizes(r) for r in results] == [NSS_EACH, NSS_EACH]
    for stream, result in enumerate(results):
        assert both(result) == tshark.decrypted_streams(CAPTURES / "nss_sll.pcap", keys, stream)


QUIRKS_EACH = {"c2s": 27, "s2c": 171}        # tshark, with keylogs/quirks_clean.txt, on each connection


def test_a_key_log_bent_every_way_decrypts_what_its_clean_copy_does():
    """keylogs/quirks.txt: CRLF, a BOM before an entry, comments, blanks, entries run together, Wireshark's
    old Session-ID line, and four lines nothing can use; the rest decrypt what tshark decrypts with the clean
    key log the same sessions wrote."""
    pcap, keys = CAPTURES / "gen_keylog_quirks.pcap", KEYLOGS / "quirks.txt"
    keylog = read_keylog(keys)
    assert keylog.entries == 6
    assert [(s.line, s.reason) for s in keylog.skipped] == [
        (7, "unknown label 'client_random'"),
        (8, "the client random is 31 bytes, not 32"),
        (9, "the secret is not hex (two hex digits a byte)"),
        (10, "not an NSS key log entry (LABEL CLIENT_RANDOM SECRET)")]
    results = decrypted(pcap, keys)
    assert [sizes(r) for r in results] == [QUIRKS_EACH, QUIRKS_EACH]
    for stream, (result, port) in enumerate(zip(results, (14506, 14507))):
        assert both(result) == tshark.decrypted_streams(pcap, KEYLOGS / "quirks_clean.txt", stream, port)
    # The TLS 1.2 connection opens with the Session-ID line alone, in tshark too.
    assert both(results[0]) == tshark.decrypted_streams(pcap, keys, 0, 14506)


# --- the cases: NSS RSA lines (pre-master secrets) -------------------------------------

RSA_CASES = {
    # capture, key log, server port: tshark's bytes each way
    "rsa_label_only (EMS, SHA-256)": ("gen_tls12_rsa_gcm_ems.pcap", "rsa_label_only.txt", 14431, 18, 4179),
    "rsa_label_noems (no EMS)": ("gen_tls12_rsa_noems.pcap", "rsa_label_noems.txt", 14501, 27, 171),
    "pms_client_random (EMS, SHA-384)": ("gen_tls12_rsa_sha384_ems.pcap", "pms_client_random_sha384_ems.txt",
                                         14502, 27, 171),
}


@pytest.mark.parametrize("case", RSA_CASES)
def test_pre_master_secret_lines_decrypt(case: str):
    name, keys, port, c2s, s2c = RSA_CASES[case]
    pcap, keys_path = CAPTURES / name, KEYLOGS / keys
    [result] = decrypted(pcap, keys_path)
    assert result.error is None and result.failures == []
    assert sizes(result) == {"c2s": c2s, "s2c": s2c}
    assert both(result) == tshark.decrypted_streams(pcap, keys_path, 0, port)


def test_an_rsa_line_for_another_session_says_what_was_looked_for():
    text = (KEYLOGS / "rsa_label_noems.txt").read_text()       # the no-EMS session's pre-master secret
    [connection] = analyze_file(CAPTURES / "gen_tls12_rsa_gcm_ems.pcap").tls
    result = decrypt_records(records_of(connection), KeyLog.parse(text))
    assert result.error is not None and result.plaintexts == []
    assert "nor an RSA entry for its encrypted pre-master secret 7146cf4fdf940377" in result.error


def test_the_extended_master_secret_is_what_makes_the_rsa_line_work():
    """Derived without RFC 7627's session hash, the same pre-master secret gives keys that do not open."""
    [connection] = analyze_file(CAPTURES / "gen_tls12_rsa_gcm_ems.pcap").tls
    records = records_of(connection)
    keylog = read_keylog(KEYLOGS / "rsa_label_only.txt")
    pre_master = next(iter(keylog.secrets.values()))
    hello, server = connection.client_hello, connection.server_hello
    assert hello is not None and server is not None
    suite = decrypt.suite_for(server.cipher_suite)
    plain_master = decrypt.master_secret_from_pre_master(suite, pre_master, hello.random, server.random, None)
    with pytest.raises(DecryptError, match="authentication failed on record"):
        decrypt_connection(records, KeyLog({("CLIENT_RANDOM", hello.random): plain_master}), version=server.version,
                           cipher_suite=server.cipher_suite, client_random=hello.random, server_random=server.random)
    assert decrypt.application_data(decrypt_connection(records, keylog, version=server.version,
                                                       cipher_suite=server.cipher_suite, client_random=hello.random,
                                                       server_random=server.random), "s2c")


# --- the cases: renegotiation -----------------------------------------------------------

RENEGOTIATIONS = {
    "client-initiated, AES-GCM": ("gen_tls12_renego.pcap", "gen_tls12_renego.keylog", 14433, 39, 39),
    "server-initiated (HelloRequest), resumed, ChaCha20": ("gen_tls12_renego_server_chacha.pcap",
                                                           "gen_tls12_renego_server_chacha.keylog", 14503, 65, 65),
}


@pytest.mark.parametrize("case", RENEGOTIATIONS)
def test_renegotiation_is_followed_into_the_second_handshake(case: str):
    name, keys, port, c2s, s2c = RENEGOTIATIONS[case]
    pcap, keys_path = CAPTURES / name, CAPTURES / keys
    [result] = decrypted(pcap, keys_path)
    assert result.error is None and result.failures == [] and result.handshakes == 2
    assert sizes(result) == {"c2s": c2s, "s2c": s2c}
    assert both(result) == tshark.decrypted_streams(pcap, keys_path, 0, port)


def test_renegotiation_without_the_second_key_keeps_what_came_before():
    """Only the first handshake's CLIENT_RANDOM: its 13 bytes each way decrypt, the rest says what is missing."""
    lines = [line for line in (CAPTURES / "gen_tls12_renego.keylog").read_text().splitlines() if line.strip()]
    [connection] = analyze_file(CAPTURES / "gen_tls12_renego.pcap").tls
    assert connection.client_hello is not None
    first = [line for line in lines if connection.client_hello.random.hex() in line]
    result = decrypt_records(records_of(connection), KeyLog.parse("\n".join(first)))
    assert sizes(result) == {"c2s": 13, "s2c": 13} and result.error is None
    reasons = {f.reason for f in result.failures}
    assert len(reasons) == 1 and "the key log has no secrets for this connection's client random" in reasons.pop()
    before = tshark.decrypted_streams(CAPTURES / "gen_tls12_renego.pcap", CAPTURES / "gen_tls12_renego.keylog", 0,
                                      14433)
    assert both(result) == {d: data[:13] for d, data in before.items()}


# --- the cases: TLS 1.3 0-RTT early data -----------------------------------------------------

EARLY = CAPTURES / "gen_tls13_early_data.pcap"
EARLY_KEYS = CAPTURES / "gen_tls13_early_data.keylog"
EARLY_DATA = b"early: sent before the ServerHello (0-RTT)\n"


def test_early_data_is_decrypted_with_the_early_traffic_secret():
    """The second connection resumes and sends 0-RTT data with its ClientHello, before the ServerHello
    names the suite: tshark decrypts 40 / 0 bytes on the first connection, 82 / 14 on the second."""
    first, second = decrypted(EARLY, EARLY_KEYS)
    assert sizes(first) == {"c2s": 40, "s2c": 0} and sizes(second) == {"c2s": 82, "s2c": 14}
    assert second.failures == [] and second.application_data("c2s").startswith(EARLY_DATA)
    for stream, result in enumerate((first, second)):
        assert both(result) == tshark.decrypted_streams(EARLY, EARLY_KEYS, stream, 14508)


def test_early_data_without_its_secret_is_said_and_the_rest_decrypts():
    text = "\n".join(line for line in EARLY_KEYS.read_text().splitlines() if "CLIENT_EARLY" not in line)
    _first, second = [decrypt_records(records_of(c), KeyLog.parse(text)) for c in analyze_file(EARLY).tls]
    theirs = tshark.decrypted_streams(EARLY, EARLY_KEYS, 1, 14508)
    assert both(second) == {"c2s": theirs["c2s"][len(EARLY_DATA):], "s2c": theirs["s2c"]}
    assert len(second.failures) == 2           # the early data and the EndOfEarlyData after it
    assert all("0-RTT early data that cannot be decrypted: the key log has no CLIENT_EARLY_TRAFFIC_SECRET"
               in f.reason for f in second.failures)


# --- the cases: records lost in a gap of the capture ----------------------------------------

HEISE_KEYS = CAPTURES / "zeek_tls-1.2-stream-keylog.keylog.txt"
HEISE_C2S, HEISE_S2C_BEFORE_HOLE = 9715, 46792           # tshark on heise_drop_frame80.pcap
# tshark on Zeek's tls-1.2-stream-keylog.pcap (heise_drop_frame80.pcap before editcap took frame 80 out):
# 147270 bytes server to client, of which the 16408-byte record the hole falls in carried 16384.
HEISE_S2C_ALL, HEISE_LOST_RECORD = 147270, 16384


def test_heise_gap_decrypts_up_to_the_hole_as_tshark_does():
    """The analyzer's records of the capture, whatever its reassembly makes of the hole: both directions
    decrypt exactly as tshark does up to the hole, and a record that fails there is said, not fatal."""
    pcap = CAPTURES / "heise_drop_frame80.pcap"
    [result] = decrypted(pcap, HEISE_KEYS)
    theirs = tshark.decrypted_streams(pcap, HEISE_KEYS)
    assert len(theirs["c2s"]) == HEISE_C2S and len(theirs["s2c"]) == HEISE_S2C_BEFORE_HOLE
    assert result.application_data("c2s") == theirs["c2s"]
    assert result.application_data("s2c")[:HEISE_S2C_BEFORE_HOLE] == theirs["s2c"]
    assert result.error is None


def test_heise_gap_decryption_resumes_after_the_hole():
    """Records after the hole (found again where whole records follow one another): the record the hole
    cuts is said not captured whole, and everything else the server sent decrypts: the whole stream
    tshark decrypts from the capture without the hole, but that record. Without the cut record in the
    list, the sequence number is recovered from the AES-GCM explicit nonce and one record counted lost."""
    pcap = CAPTURES / "heise_drop_frame80.pcap"
    records = records_across_holes(pcap, 443)
    [cut] = [i for i, r in enumerate(records) if r.missing]
    result = decrypt_records(records, read_keylog(HEISE_KEYS))
    theirs = tshark.decrypted_streams(pcap, HEISE_KEYS)
    [failure] = result.failures
    assert failure.index == cut and f"record {cut} (s2c) was not captured whole: " in failure.reason
    assert result.lost == []
    without = decrypt_records(records[:cut] + records[cut + 1:], read_keylog(HEISE_KEYS))
    assert without.failures == [] and [(x.direction, x.records) for x in without.lost] == [("s2c", 1)]
    assert both(without) == both(result)
    assert sizes(result) == {"c2s": HEISE_C2S, "s2c": HEISE_S2C_ALL - HEISE_LOST_RECORD}
    assert result.application_data("c2s") == theirs["c2s"]
    assert result.application_data("s2c")[:HEISE_S2C_BEFORE_HOLE] == theirs["s2c"]


GAPS = {
    # capture (whole records dropped by editcap), its undamaged original, port, records lost, tshark's s2c bytes
    "TLS 1.3 AES-128-GCM, 1 record": ("gen_tls13_gap.pcap", "gen_tls13_gap_full.pcap", "gen_tls13_gap.keylog",
                                      14504, 1, 5545 - 512),
    "TLS 1.2 ChaCha20, 2 records": ("gen_tls12_chacha_gap.pcap", "gen_tls12_chacha_gap_full.pcap",
                                    "gen_tls12_chacha_gap.keylog", 14505, 2, 5545 - 1024),
}


@pytest.mark.parametrize("case", GAPS)
def test_records_lost_on_the_wire_are_counted_and_the_rest_decrypts(case: str):
    """No explicit nonce here: the sequence number is found by trying the next ones. The result is what
    tshark decrypts from the undamaged capture, less exactly the lost records (tshark itself stops
    decrypting at the gap: its sequence number stays behind)."""
    name, full, keys, port, lost, s2c = GAPS[case]
    pcap, keys_path = CAPTURES / name, CAPTURES / keys
    [result] = decrypted(pcap, keys_path)
    assert result.failures == [] and [x.records for x in result.lost] == [lost]
    assert sizes(result) == {"c2s": 26, "s2c": s2c}
    complete = tshark_records(CAPTURES / full, keys_path, 0, port)
    at = next(i for i in range(len(complete["s2c"]))
              if b"".join(complete["s2c"][:i] + complete["s2c"][i + lost:]) == result.application_data("s2c"))
    assert all(len(r) == 512 for r in complete["s2c"][at:at + lost])
    assert result.application_data("c2s") == b"".join(complete["c2s"])
    damaged = tshark.decrypted_streams(pcap, keys_path, 0, port)
    assert result.application_data("s2c").startswith(damaged["s2c"]) and len(damaged["s2c"]) < s2c


@pytest.mark.parametrize("marked", [True, False])
@pytest.mark.parametrize("name, keys, port", [
    ("gen_tls13_gap_full.pcap", "gen_tls13_gap.keylog", 14504),                   # IV XOR sequence number
    ("gen_tls12_chacha_gap_full.pcap", "gen_tls12_chacha_gap.keylog", 14505),     # the same, TLS 1.2
    ("heise_drop_frame80.pcap", "zeek_tls-1.2-stream-keylog.keylog.txt", 443),    # AES-GCM's explicit nonce
])
def test_records_removed_from_the_list_are_recovered(name: str, keys: str, port: int, marked: bool):
    """The decryptor alone: take two server records out, with or without the after_gap mark the TCP layer
    sets; what remains decrypts to what tshark decrypts from the capture, less those two records."""
    records = records_across_holes(CAPTURES / name, port)
    keylog = read_keylog(CAPTURES / keys)
    whole = decrypt_records(records, keylog)
    theirs = tshark.decrypted_streams(CAPTURES / name, CAPTURES / keys, 0, port)
    assert whole.application_data("c2s") == theirs["c2s"]
    assert whole.application_data("s2c")[:len(theirs["s2c"])] == theirs["s2c"]      # heise: up to its hole
    server = [p.index for p in whole.plaintexts if p.direction == "s2c" and p.content_type == 23]
    cut = server[1:3]
    kept = [replace(r, after_gap=r.after_gap or (marked and i == cut[-1] + 1))
            for i, r in enumerate(records) if i not in cut]
    result = decrypt_records(kept, keylog)
    assert [f for f in result.failures if not kept[f.index].missing] == []       # heise: the record its hole cuts
    assert result.application_data("s2c") == b"".join(
        p.data for p in whole.plaintexts if p.direction == "s2c" and p.content_type == 23 and p.index not in cut)
    assert [x.records for x in result.lost][:1] == [2]


def test_a_record_that_fits_no_nearby_sequence_number_is_said_and_the_rest_goes_on(monkeypatch):
    """A record damaged in the capture: counted as not decrypted, with why; the records after it still open."""
    monkeypatch.setattr(decrypt, "SEQUENCE_SEARCH", 4)
    [connection] = analyze_file(CAPTURES / "gen_tls13_gap_full.pcap").tls
    records = records_of(connection)
    keylog = read_keylog(CAPTURES / "gen_tls13_gap.keylog")
    target = [p.index for p in decrypt_records(records, keylog).plaintexts
              if p.direction == "s2c" and p.content_type == 23][6]
    broken = bytearray(records[target].fragment)
    broken[10] ^= 1
    records[target] = replace(records[target], fragment=bytes(broken))
    result = decrypt_records(records, keylog)
    [failure] = result.failures
    assert failure.index == target and "authentication failed with every sequence number" in failure.reason
    assert len(result.application_data("s2c")) == 5545 - 512 and result.lost == []


# --- never a crash -----------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
LINE = st.one_of(st.text(max_size=120), st.sampled_from([GOOD, f"RSA Session-ID:{'99' * 32} Master-Key:{MASTER.hex()}",
                                                          "\ufeff", "\r", "RSA ", "CLIENT_RANDOM ", "EXPORTER_SECRET"]))


@FUZZ
@given(st.lists(LINE, max_size=12))
def test_key_log_reading_never_raises(lines):
    log = KeyLog.parse("\n".join(lines) + "".join(lines))
    assert log.entries >= 0 and all(s.line >= 1 and s.reason for s in log.skipped)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["c2s", "s2c"]), st.sampled_from([20, 21, 22, 23]),
                          st.binary(max_size=80), st.booleans()), max_size=12))
def test_decrypting_whatever_records_never_raises(items):
    hello = bytes.fromhex("0100002a0303") + RANDOM + b"\x00\x00\x02\xc0\x2f\x01\x00"
    server = bytes.fromhex("0200002a0303") + bytes(32) + b"\x00\xc0\x2f\x00"
    records = [Record("c2s", 22, 0x0301, hello), Record("s2c", 22, 0x0303, server)]
    records += [Record(d, t, 0x0303, data, gap) for d, t, data, gap in items]
    result = decrypt_records(records, KeyLog({("CLIENT_RANDOM", RANDOM): MASTER}))
    assert result.error is None or (result.error and "\n" not in result.error)
    result.to_dict()
