"""labctl.tls.stolenkey: the server's private key is stolen; which recordings can the thief read?

Each session is real TLS between two OpenSSL contexts (tests/synth.py), written
as a pcap. The attack gets only the pcap and the server's private key, never
the key log; the key log is used here only to check the attack's result.

Two independent checks of a decrypted RSA session:
- tshark, given only the RSA key, decrypts the same pcap to the same bytes;
- the master secret the attack derives equals the CLIENT_RANDOM line of the
  client's key log (and the pre-master secret equals its "RSA" line).

tshark 4.0 syntax for an RSA key (both checked against the installed 4.0.17):
    -o 'uat:rsa_keys:"/path/server-rsa.key",""'      (key file, password: the current way)
    -o 'tls.keys_list:0.0.0.0,443,http,/path/key'     (the pre-1.6 list, still honoured)
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import dpkt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from labctl.errors import LabError
from labctl.tls import stolenkey
from labctl.tls.analyzer import TlsConnection, analyze
from labctl.tls.constants import TLS12, TLS13, version_name
from labctl.tls.records import walk_records
from labctl.tls.stolenkey import (NO_CLIENT_KEY_EXCHANGE, NO_TLS, WRONG_KEY, Attempt, Step, StolenKeyError, attack,
                              attack_capture, load_private_key)
from tests import synth, tshark

RSA_KX = {"aes128": "AES128-GCM-SHA256", "aes256": "AES256-GCM-SHA384"}


# --- sessions, made once per module ---------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stolenkey")
    synth.make_certs(path)
    return path


@pytest.fixture(scope="module")
def server_key_pem(folder: Path) -> bytes:
    return (folder / "certs" / "server" / "server-rsa.key").read_bytes()


@pytest.fixture(scope="module")
def server_key(server_key_pem: bytes) -> rsa.RSAPrivateKey:
    return load_private_key(server_key_pem)


@pytest.fixture(scope="module")
def other_key_pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Another lab's server key: same kind and size, wrong server."""
    other = synth.make_certs(tmp_path_factory.mktemp("other-lab"))
    return (other / "server" / "server-rsa.key").read_bytes()


@pytest.fixture(scope="module")
def sessions(folder: Path) -> dict[str, synth.Session]:
    made = {name: synth.tls_session(folder, max_version="1.2", ciphers=ciphers, name=f"rsa-{name}")
            for name, ciphers in RSA_KX.items()}
    made["ecdhe"] = synth.tls_session(folder, max_version="1.2", ciphers="ECDHE-RSA-AES128-GCM-SHA256", name="ecdhe")
    made["dhe"] = synth.tls_session(folder, max_version="1.2", ciphers="DHE-RSA-AES128-GCM-SHA256", name="dhe")
    made["tls13"] = synth.tls_session(folder, name="tls13")
    return made


def only_connection(pcap: Path) -> TlsConnection:
    observation = analyze(pcap.read_bytes())
    assert len(observation.tls) == 1
    return observation.tls[0]


def keylog_lines(session: synth.Session) -> dict[str, list[tuple[str, str]]]:
    """label -> [(key, secret)] from the client's NSS key log."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in session.keylog.read_text().splitlines():
        if line and not line.startswith("#"):
            label, key, secret = line.split()
            out.setdefault(label, []).append((key.lower(), secret.lower()))
    return out


def step(attempt: Attempt, name: str) -> Step:
    matches = [s for s in attempt.steps if s.name == name]
    assert len(matches) == 1, [s.name for s in attempt.steps]
    return matches[0]


# --- RSA key exchange: the key opens it ------------------------------------------------

@pytest.mark.parametrize("suite", sorted(RSA_KX))
def test_rsa_key_exchange_is_decrypted_with_the_key_alone(sessions, server_key, suite) -> None:
    session = sessions[suite]
    attempt = attack(only_connection(session.pcap), server_key)

    assert attempt.decrypted, attempt.reason
    assert attempt.key_exchange == "RSA"
    assert version_name(attempt.version) == "TLS 1.2"
    assert attempt.cipher == {"aes128": "TLS_RSA_WITH_AES_128_GCM_SHA256",
                              "aes256": "TLS_RSA_WITH_AES_256_GCM_SHA384"}[suite]
    assert attempt.client_data == session.request
    assert attempt.server_data == session.response
    assert "RSA key exchange" in attempt.reason

    encrypted = bytes.fromhex(step(attempt, "encrypted pre-master secret (ClientKeyExchange)").value)
    assert len(encrypted) == server_key.key_size // 8
    observation = analyze(session.pcap.read_bytes())
    assert observation.find(encrypted), "the encrypted pre-master secret is on the wire"
    pre_master = bytes.fromhex(step(attempt, "pre-master secret").value)
    assert len(pre_master) == 48 and pre_master[:2] == b"\x03\x03"
    assert not observation.find(pre_master), "the pre-master secret itself is not"
    master = bytes.fromhex(step(attempt, "master secret").value)
    assert len(master) == 48
    first = step(attempt, "first application data record, decrypted (c2s)")
    assert session.request.startswith(bytes.fromhex(first.value))
    assert "GET /account" in first.note
    finished = step(attempt, "client Finished verify_data, decrypted")
    assert len(bytes.fromhex(finished.value)) == 12 and "so the master secret is this session's" in finished.note
    for s in attempt.steps:
        bytes.fromhex(s.value)                      # full hex, every one
        assert "\n" not in s.note and s.note


@pytest.mark.parametrize("suite", sorted(RSA_KX))
def test_secrets_agree_with_the_clients_key_log(sessions, server_key, suite) -> None:
    """Second independent check: what OpenSSL logged as the session's secrets is what the attack derived."""
    session = sessions[suite]
    connection = only_connection(session.pcap)
    attempt = attack(connection, server_key)
    logged = keylog_lines(session)
    assert logged["CLIENT_RANDOM"] == [(connection.client_hello.random.hex(), step(attempt, "master secret").value)]
    # The "RSA" line: first 8 bytes of the encrypted pre-master secret -> the pre-master secret.
    encrypted = step(attempt, "encrypted pre-master secret (ClientKeyExchange)").value
    assert logged["RSA"] == [(encrypted[:16], step(attempt, "pre-master secret").value)]


def test_python_clients_negotiate_the_extended_master_secret(sessions, server_key) -> None:
    """OpenSSL offers extended_master_secret by default: the master secret comes from the session hash."""
    attempt = attack(only_connection(sessions["aes128"].pcap), server_key)
    assert "extended master secret" in step(attempt, "master secret").note
    assert len(bytes.fromhex(step(attempt, "session hash").value)) == 32       # SHA-256 for this suite
    attempt = attack(only_connection(sessions["aes256"].pcap), server_key)
    assert len(bytes.fromhex(step(attempt, "session hash").value)) == 48       # SHA-384: the suite's PRF hash


def test_without_extended_master_secret(folder, server_key, monkeypatch) -> None:
    """RFC 5246 8.1 master secret: the client does not offer extension 23 (SSL_OP_NO_EXTENDED_MASTER_SECRET)."""
    original = ssl.create_default_context

    def client_context(*args, **kwargs):
        context = original(*args, **kwargs)
        context.options |= 0x1       # SSL_OP_NO_EXTENDED_MASTER_SECRET (OpenSSL 3.0: SSL_OP_BIT(0))
        return context

    monkeypatch.setattr(ssl, "create_default_context", client_context)
    session = synth.tls_session(folder, max_version="1.2", ciphers="AES128-GCM-SHA256", name="no-ems")
    monkeypatch.undo()
    attempt = attack(only_connection(session.pcap), server_key)
    assert attempt.decrypted
    assert (attempt.client_data, attempt.server_data) == (session.request, session.response)
    assert not [s for s in attempt.steps if s.name == "session hash"]
    assert '"master secret", ClientHello.random + ServerHello.random' in step(attempt, "master secret").note
    assert keylog_lines(session)["CLIENT_RANDOM"][0][1] == step(attempt, "master secret").value


# --- tshark, the independent decryptor ----------------------------------------------------

def tshark_follow(pcap: Path, option: str, server_port: int = 443) -> dict[str, bytes]:
    """`tshark -z follow,tls,raw,0` with one extra OPTION, per direction (tests/tshark.py reads it)."""
    return tshark.decrypted_streams(pcap, None, server_port=server_port, options=(option,))


RSA_KEY_OPTIONS = {
    "uat-rsa_keys": lambda key: f'uat:rsa_keys:"{key}",""',
    "tls.keys_list": lambda key: f"tls.keys_list:0.0.0.0,443,http,{key}",
}


@pytest.mark.parametrize("syntax", sorted(RSA_KEY_OPTIONS))
@pytest.mark.parametrize("suite", sorted(RSA_KX))
def test_tshark_with_the_rsa_key_decrypts_the_same_bytes(sessions, server_key, folder, suite, syntax) -> None:
    session = sessions[suite]
    key_file = folder / "certs" / "server" / "server-rsa.key"
    theirs = tshark_follow(session.pcap, RSA_KEY_OPTIONS[syntax](key_file))
    ours = attack(only_connection(session.pcap), server_key)
    assert theirs == {"c2s": ours.client_data, "s2c": ours.server_data}
    assert theirs == {"c2s": session.request, "s2c": session.response}


def test_tshark_without_a_key_decrypts_nothing(sessions) -> None:
    """The control: it is the key that opens the capture, not some preference tshark picked up elsewhere."""
    assert tshark_follow(sessions["aes128"].pcap, "tls.desegment_ssl_records:TRUE") == {"c2s": b"", "s2c": b""}


def test_tshark_with_the_rsa_key_cannot_open_forward_secret_sessions(sessions, folder) -> None:
    key_file = folder / "certs" / "server" / "server-rsa.key"
    for name in ("ecdhe", "dhe", "tls13"):
        assert tshark_follow(sessions[name].pcap, RSA_KEY_OPTIONS["uat-rsa_keys"](key_file)) == \
            {"c2s": b"", "s2c": b""}, name


# --- forward secrecy: the key does not open it ------------------------------------------------

@pytest.mark.parametrize("name, key_exchange", [("ecdhe", "ECDHE"), ("dhe", "DHE"), ("tls13", "TLS 1.3 (ECDHE)")])
def test_forward_secret_sessions_stay_closed(sessions, server_key, name, key_exchange) -> None:
    session = sessions[name]
    attempt = attack(only_connection(session.pcap), server_key)
    assert not attempt.decrypted
    assert attempt.key_exchange == key_exchange
    assert attempt.client_data == attempt.server_data == b""
    assert "forward secret" in attempt.reason and "ephemeral" in attempt.reason
    assert "only signed" in attempt.reason and "does not help" in attempt.reason
    assert "\n" not in attempt.reason
    # The public shares are on the wire; what they lead to is not.
    # (A share may straddle two TCP segments: look in the reassembled streams too.)
    wire = session.pcap.read_bytes()
    observation = analyze(wire)
    shares = [s for s in attempt.steps if "ephemeral" in s.name and "signature" not in s.name]
    assert len(shares) == 2
    for share in shares:
        assert observation.find(bytes.fromhex(share.value)), share.name
    secrets = [bytes.fromhex(secret) for lines in keylog_lines(session).values() for _, secret in lines]
    assert secrets
    for secret in secrets:
        assert secret not in wire and not observation.find(secret), "a session secret crossed the wire"


@pytest.mark.parametrize("name", ["ecdhe", "dhe"])
def test_the_key_only_signed_the_ephemeral_share(sessions, server_key, other_key_pem, name) -> None:
    """The stolen key is the right one (its public half verifies the ServerKeyExchange signature), and still
    it opens nothing; another server's key does not even verify the signature."""
    connection = only_connection(sessions[name].pcap)
    signature = "server's signature over its ephemeral share (ServerKeyExchange)"
    assert step(attack(connection, server_key), signature).note.startswith("verifies with the stolen key")
    wrong = attack(connection, load_private_key(other_key_pem))
    assert not wrong.decrypted
    assert step(wrong, signature).note.startswith("does NOT verify")


def test_tls13_reason_names_certificate_verify(sessions, server_key) -> None:
    attempt = attack(only_connection(sessions["tls13"].pcap), server_key)
    assert version_name(attempt.version) == "TLS 1.3"
    assert "CertificateVerify" in attempt.reason and "RFC 8446" in attempt.reason


def test_an_attempts_version_is_a_number_and_its_json_a_name(sessions, server_key) -> None:
    rsa = attack(only_connection(sessions["aes128"].pcap), server_key)
    tls13 = attack(only_connection(sessions["tls13"].pcap), server_key)
    assert (rsa.version, tls13.version) == (TLS12, TLS13)
    assert (rsa.to_dict()["version"], tls13.to_dict()["version"]) == ("TLS 1.2", "TLS 1.3")
    assert Attempt("a flow", None, "", "unknown", False, "no ServerHello").to_dict()["version"] is None


# --- a capture with several connections ----------------------------------------------------

def merge_pcaps(out: Path, *pcaps: Path) -> Path:
    frames = []
    for pcap in pcaps:
        with open(pcap, "rb") as handle:
            frames += [(ts, bytes(frame)) for ts, frame in dpkt.pcap.Reader(handle)]
    with open(out, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in sorted(frames, key=lambda f: f[0]):
            writer.writepkt(frame, ts=ts)
    return out


def test_attack_capture_reads_only_the_rsa_recordings(sessions, server_key_pem, tmp_path) -> None:
    names = ["aes128", "ecdhe", "tls13", "aes256", "dhe"]
    pcap = merge_pcaps(tmp_path / "all.pcap", *(sessions[n].pcap for n in names))
    attempts = attack_capture(pcap.read_bytes(), server_key_pem)
    assert len(attempts) == 5
    by_port = {a.flow.split(" → ")[0].rsplit(":", 1)[1]: a for a in attempts}
    for name in names:
        attempt = by_port[str(sessions[name].client[1])]
        assert attempt.decrypted == (name in RSA_KX), (name, attempt.reason)
        if attempt.decrypted:
            assert (attempt.client_data, attempt.server_data) == (sessions[name].request, sessions[name].response)
    assert sorted(a.key_exchange for a in attempts) == ["DHE", "ECDHE", "RSA", "RSA", "TLS 1.3 (ECDHE)"]


# --- what goes wrong ----------------------------------------------------------------------------

def test_wrong_key(sessions, other_key_pem) -> None:
    connection = only_connection(sessions["aes128"].pcap)
    with pytest.raises(StolenKeyError) as caught:
        attack(connection, load_private_key(other_key_pem))
    assert str(caught.value) == WRONG_KEY
    [attempt] = attack_capture(sessions["aes128"].pcap.read_bytes(), other_key_pem)
    assert not attempt.decrypted and attempt.reason == WRONG_KEY
    assert attempt.key_exchange == "RSA" and attempt.client_data == b""


def test_wrong_key_of_another_size(sessions) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    with pytest.raises(StolenKeyError, match="^the stolen key does not decrypt"):
        attack(only_connection(sessions["aes128"].pcap), key)


def test_a_pre_master_that_only_looks_right_is_caught_by_the_records(sessions, server_key, monkeypatch) -> None:
    """OpenSSL's implicit rejection: a wrong key may 'decrypt' to random bytes. If those happened to look like
    a pre-master secret (48 bytes, 0x0303...), the first record's AEAD tag still gives the key away."""
    monkeypatch.setattr(stolenkey, "_decrypt_pre_master", lambda key, encrypted, version: b"\x03\x03" + bytes(46))
    with pytest.raises(StolenKeyError) as caught:
        attack(only_connection(sessions["aes128"].pcap), server_key)
    assert str(caught.value) == WRONG_KEY


def test_altered_ciphertext_is_not_blamed_on_the_key(sessions, server_key) -> None:
    connection = only_connection(sessions["aes128"].pcap)
    index = next(i for i, r in enumerate(connection.records) if r.content_type == 23 and r.direction == "c2s")
    record = connection.records[index]
    damaged = replace(record, fragment=record.fragment[:-1] + bytes([record.fragment[-1] ^ 1]))
    records = connection.records[:index] + [damaged] + connection.records[index + 1:]
    with pytest.raises(StolenKeyError, match="the master secret was recovered, but .*authentication failed"):
        attack(replace(connection, records=records), server_key)


def after_change_cipher_spec(connection: TlsConnection) -> list:
    """Each side's records after its ChangeCipherSpec: a recording that starts after the handshake."""
    kept, started = [], set()
    for record in connection.records:
        if record.direction in started:
            kept.append(record)
        elif record.content_type == 20:
            started.add(record.direction)
    return kept


def test_records_without_the_handshake(sessions, server_key) -> None:
    connection = only_connection(sessions["aes128"].pcap)
    cut = replace(connection, records=after_change_cipher_spec(connection))
    with pytest.raises(StolenKeyError) as caught:
        attack(cut, server_key)
    assert str(caught.value) == NO_CLIENT_KEY_EXCHANGE
    with pytest.raises(StolenKeyError) as caught:
        attack(replace(cut, client_hello=None, server_hello=None), server_key)
    assert str(caught.value) == NO_CLIENT_KEY_EXCHANGE


def cut_after_client_change_cipher_spec(pcap: Path, out: Path, client_port: int) -> Path:
    """Rewrite PCAP keeping only the packets after the one that carried the client's ChangeCipherSpec."""
    with open(pcap, "rb") as handle:
        packets = [(ts, bytes(frame)) for ts, frame in dpkt.pcap.Reader(handle)]
    stream, cut = b"", None
    for number, (_ts, frame) in enumerate(packets):
        tcp = dpkt.ethernet.Ethernet(frame).data.data
        if tcp.sport != client_port or not tcp.data:
            continue
        stream += bytes(tcp.data)
        if any(r.content_type == 20 for r in walk_records(stream)):
            cut = number + 1
            break
    assert cut is not None
    with open(out, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in packets[cut:]:
            writer.writepkt(frame, ts=ts)
    return out


def test_capture_that_starts_after_the_handshake(sessions, server_key_pem, tmp_path) -> None:
    session = sessions["aes128"]
    pcap = cut_after_client_change_cipher_spec(session.pcap, tmp_path / "late.pcap", session.client[1])
    [attempt] = attack_capture(pcap.read_bytes(), server_key_pem)
    assert not attempt.decrypted
    assert attempt.reason == NO_CLIENT_KEY_EXCHANGE
    assert attempt.flow.startswith(f"{session.client[0]}:{session.client[1]} → {session.server[0]}:443")


def test_unsupported_suite(folder, server_key) -> None:
    session = synth.tls_session(folder, max_version="1.2", ciphers="AES128-SHA", name="cbc")
    with pytest.raises(StolenKeyError, match=r"RSA key exchange, which the stolen key would open, but cipher "
                                             r"suite 0x002F is not supported"):
        attack(only_connection(session.pcap), server_key)


def test_no_tls_in_the_capture(tmp_path, server_key_pem) -> None:
    session = synth.plain_session(tmp_path, request=b"GET / HTTP/1.1\r\n\r\n", response=b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(StolenKeyError) as caught:
        attack_capture(session.pcap.read_bytes(), server_key_pem)
    assert str(caught.value) == NO_TLS


def test_an_ec_key_is_not_an_rsa_key(folder, sessions) -> None:
    pem = (folder / "certs" / "server" / "server-ecdsa.key").read_bytes()
    with pytest.raises(StolenKeyError, match="not an RSA private key"):
        load_private_key(pem)
    with pytest.raises(StolenKeyError, match="not an RSA private key"):
        attack_capture(sessions["aes128"].pcap.read_bytes(), pem)


@pytest.mark.parametrize("what, pem, message", [
    ("certificate", None, r"holds no private key \(a certificate\)"),
    ("public key", None, r"holds no private key \(a public key\)"),
    ("garbage", b"not a key at all", "holds no private key"),
    ("encrypted", None, "encrypted with a passphrase"),
])
def test_not_a_usable_private_key(folder, server_key, what, pem, message) -> None:
    if what == "certificate":
        pem = (folder / "certs" / "server" / "server-rsa.crt").read_bytes()
    elif what == "public key":
        pem = server_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    elif what == "encrypted":
        pem = server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"hunter2"))
    with pytest.raises(StolenKeyError, match=message) as caught:
        load_private_key(pem)
    assert isinstance(caught.value, LabError) and "\n" not in str(caught.value)


def test_der_and_pkcs8_keys_load(server_key) -> None:
    for encoding, fmt in ((serialization.Encoding.DER, serialization.PrivateFormat.PKCS8),
                          (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8),
                          (serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL)):
        data = server_key.private_bytes(encoding, fmt, serialization.NoEncryption())
        assert load_private_key(data).private_numbers() == server_key.private_numbers()


# --- `labctl stolen-key FILE --key KEY`: bad input is exit 2, naming the file ---------------------

def _key_input(folder: Path, tmp_path: Path, what: str) -> str:
    import os

    certs_dir = folder / "certs"
    if what == "certificate":
        return str(certs_dir / "server" / "server-rsa.crt")
    if what == "ecdsa":
        return str(certs_dir / "server" / "server-ecdsa.key")
    if what == "folder":
        return str(tmp_path)
    if what == "device":
        return "/dev/zero"
    if what == "fifo":
        os.mkfifo(tmp_path / "fifo")
        return str(tmp_path / "fifo")
    if what == "missing":
        return str(tmp_path / "missing.key")
    if what == "blank":
        return " "
    if what == "huge":
        (tmp_path / "huge.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + b"A" * (2 << 20))
        return str(tmp_path / "huge.key")
    if what == "non-utf8":
        raw = os.fsencode(tmp_path) + b"/cl\xe9.key"
        with open(raw, "wb") as handle:
            handle.write(b"garbage, not a key")
        return os.fsdecode(raw)
    data = {"empty": b"", "garbage": b"\x00\x01 not a key", "text": b"just some notes\n"}[what]
    (tmp_path / f"{what}.key").write_bytes(data)
    return str(tmp_path / f"{what}.key")


@pytest.mark.parametrize("what, message", [
    ("certificate", r"holds no private key \(a certificate\): give an RSA private key in PEM, "
                    r"e\.g\. certs/server/server-rsa\.key"),
    ("ecdsa", r"is an EC \(ECDSA\) key, not an RSA private key"),
    ("empty", "is empty: give an RSA private key in PEM"),
    ("garbage", "holds no private key"),
    ("text", "holds no private key"),
    ("folder", "is a folder, not a file: give an RSA private key in PEM"),
    ("device", "is a character device, not a file"),
    ("fifo", r"is a FIFO \(named pipe\), not a file"),
    ("missing", "cannot read .*missing.key: No such file or directory"),
    ("blank", "is not a file name"),
    ("huge", "too big to be an RSA private key"),
    ("non-utf8", r"cl\\xe9\.key holds no private key"),
])
def test_what_is_not_an_rsa_key_file_is_a_usage_error_naming_it(folder, sessions, tmp_path, what, message) -> None:
    from labctl.errors import ExitStatus
    from labctl.tls.stolenkey import attack_files, read_key

    key = _key_input(folder, tmp_path, what)
    for call in (lambda: read_key(key), lambda: attack_files(sessions["aes128"].pcap, key)):
        with pytest.raises(LabError, match=message) as caught:
            call()
        text = str(caught.value)
        assert caught.value.status == ExitStatus.USAGE and "\n" not in text, text
        assert text.startswith("--key"), text
        text.encode("utf-8")


@pytest.mark.parametrize("what", ["folder", "device", "fifo", "empty", "text", "certificate"])
def test_what_is_not_a_capture_is_a_usage_error_too(folder, server_key_pem, tmp_path, what) -> None:
    from labctl.errors import ExitStatus
    from labctl.tls.stolenkey import attack_files

    pcap = _key_input(folder, tmp_path, what)
    key = folder / "certs" / "server" / "server-rsa.key"
    with pytest.raises(LabError) as caught:
        attack_files(pcap, key)
    assert caught.value.status == ExitStatus.USAGE and "\n" not in str(caught.value)
    assert "pcap or pcapng capture" in str(caught.value) or "not a pcap or pcapng file" in str(caught.value)


def test_a_forward_secret_capture_stays_a_failure_to_decrypt_not_bad_input(folder, sessions) -> None:
    from labctl.tls.stolenkey import attack_files

    attempts = attack_files(sessions["ecdhe"].pcap, folder / "certs" / "server" / "server-rsa.key")
    assert [a.decrypted for a in attempts] == [False] and attempts[0].key_exchange == "ECDHE"
    [opened] = attack_files(sessions["aes128"].pcap, folder / "certs" / "server" / "server-rsa.key")
    assert opened.decrypted


def test_the_cli_exits_2_for_a_key_that_is_not_an_rsa_key(folder, sessions) -> None:
    """Through the command line as it is today (it reads the files itself, then attack_capture)."""
    import io

    from labctl.cli import Output, main

    for key in ("server-rsa.crt", "server-ecdsa.key"):
        out, err = io.StringIO(), io.StringIO()
        status = main(["stolen-key", str(sessions["aes128"].pcap), "--key", str(folder / "certs" / "server" / key)],
                      Output(out, err))
        assert status == 2 and err.getvalue().count("\n") == 1, err.getvalue()
