"""Fuzzed input: the analyzer and the decryptors never crash or hang on what a capture may hold.

Each target gets at least 1,000 generated examples (random bytes, and real
captures from tests/synth.py with bytes flipped, cut and inserted). The only
exceptions allowed are the ones that carry a one-line message for the user.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.tls import analyzer, decrypt, stolenkey
from labctl.tls.analyzer import CaptureFormatError, analyze
from labctl.tls.records import walk_records
from tests import synth

FUZZ = settings(max_examples=1000, deadline=2000, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("fuzz")
    return {"tls13": synth.tls_session(tmp, name="f13").pcap.read_bytes(),
            "tls12": synth.tls_session(tmp, max_version="1.2", name="f12").pcap.read_bytes(),
            "rsa": synth.tls_session(tmp, max_version="1.2", ciphers="AES128-GCM-SHA256", name="frsa").pcap.read_bytes()}


def survives(data: bytes) -> analyzer.Observation | None:
    try:
        observation = analyze(data, name="fuzzed.pcap")
    except CaptureFormatError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None
    observation.to_dict()                      # and everything it found can be reported
    return observation


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    survives(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_behind_a_valid_pcap_header(data):
    header = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
    survives(header + data)


@FUZZ
@given(data=st.data())
def test_mutated_real_captures(captures, data):
    original = captures[data.draw(st.sampled_from(sorted(captures)))]
    buf = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, len(buf) - 1))
        if action == "flip":
            buf[pos] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del buf[pos:pos + data.draw(st.integers(1, 64))]
        else:
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=64))
        if not buf:
            break
    observation = survives(bytes(buf))
    if observation is not None:
        for conn in observation.tls:             # and the stolen key never crashes on what it finds
            try:
                stolenkey.attack(conn, stolenkey.load_private_key(_KEY))
            except stolenkey.StolenKeyError as exc:
                assert str(exc)


@FUZZ
@given(st.binary(max_size=4096))
def test_tls_record_walk_on_random_streams(stream):
    records = walk_records(stream)
    assert sum(5 + r.length for r in records) <= len(stream)


@FUZZ
@given(st.text(max_size=400))
def test_key_log_parser(text):
    try:
        keylog = decrypt.KeyLog.parse(text)
    except decrypt.DecryptError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(keylog.secrets, dict)


@FUZZ
@given(st.binary(min_size=5, max_size=600), st.sampled_from([0x1301, 0x1302, 0x1303, 0xC02F, 0x009C, 0x002F]))
def test_decrypting_random_records_fails_cleanly(fragment, suite):
    records = [decrypt.Record("c2s", 22, 0x0301, b"\x01" + fragment[:40]),
               decrypt.Record("c2s", 23, 0x0303, fragment)]
    keylog = decrypt.KeyLog({("CLIENT_RANDOM", b"\x00" * 32): b"\x11" * 48})
    try:
        decrypt.decrypt_connection(records, keylog, version=0x0303 if suite >= 0xC000 or suite < 0x1300 else 0x0304,
                                   cipher_suite=suite, client_random=b"\x00" * 32, server_random=b"\x01" * 32)
    except decrypt.DecryptError as exc:
        assert str(exc)


def _rsa_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


_KEY = _rsa_key_pem()
