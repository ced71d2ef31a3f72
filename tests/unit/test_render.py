"""The terminal views tell the truth about the bytes they show (synthetic captures, no Docker)."""

from __future__ import annotations

import re

import pytest

from labctl import render
from labctl.capture import CaptureStats
from labctl.exchange import ExchangeResult
from labctl.tls.analyzer import analyze
from labctl.tls.constants import APPLICATION_DATA
from labctl.verdict import Check
from tests import synth


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("render")
    return {"tls12": analyze(synth.tls_session(tmp, max_version="1.2", name="tls12").pcap.read_bytes()),
            "tls13": analyze(synth.tls_session(tmp, name="tls13").pcap.read_bytes())}


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def test_tls12_gcm_ciphertext_is_shown_after_the_explicit_nonce(captures):
    obs = captures["tls12"]
    conn = obs.tls[0]
    assert "GCM" in conn.server_hello.cipher_name
    lines = render.wire_lines(obs)
    assert any("explicit nonce" in line for line in lines)
    shown = [line for line in lines if line.startswith(("↑ 17 03 03", "↓ 17 03 03"))]
    records = [r for r in conn.records if r.content_type == APPLICATION_DATA]
    assert shown and len(shown) == min(len(records), render.SHOWN_RECORDS)
    for line, record in zip(shown, records):
        assert line.endswith(f"{_hex(record.header)}  {_hex(record.fragment[8:16])} …"), line
        assert _hex(record.fragment[:8]) not in line             # the nonce is not passed off as ciphertext


def test_tls13_ciphertext_is_the_fragment_itself(captures):
    obs = captures["tls13"]
    lines = render.wire_lines(obs)
    assert not any("nonce" in line for line in lines)
    first = next(r for r in obs.tls[0].records if r.content_type == APPLICATION_DATA)
    assert f"{_hex(first.header)}  {_hex(first.fragment[:8])} …" in lines[0]


def test_records_are_listed_in_capture_order_not_grouped_by_direction(captures):
    obs = captures["tls13"]
    arrows = [line[0] for line in render.wire_lines(obs) if line[:1] in "↑↓"]
    records = sorted((r for r in obs.tls[0].records if r.content_type == APPLICATION_DATA), key=lambda r: r.frame)
    expected = ["↑" if r.direction == "c2s" else "↓" for r in records][:render.SHOWN_RECORDS]
    assert arrows == expected
    assert "↓" in arrows[:arrows.index("↑")] if "↑" in arrows else True   # the server's flight comes first


def test_first_application_data_time_is_the_first_client_record(captures):
    obs = captures["tls13"]
    conn = obs.tls[0]
    client = [r.time for r in conn.records if r.direction == "c2s" and r.content_type == APPLICATION_DATA]
    [line] = [line for line in render.leak_lines(obs) if line.startswith("time")]
    shown = float(re.search(r"([\d.]+) ms", line).group(1))
    assert shown == pytest.approx(1000 * (client[0] - conn.records[0].time), abs=0.06)


def _result(obs, passed: bool = True, name: str = "tls") -> ExchangeResult:
    stats = CaptureStats(name, "", 1, 1, 1, 0, True, False)
    return ExchangeResult(name, "a title", [Check("capture complete", passed, "1 packet")], stats, obs,
                          secret="s3cr3t-x", client={"ok": True})


def test_the_arrows_are_explained(captures):
    text = _result(captures["tls13"]).text()
    assert render.ARROWS in text and "↑ = client to server" in text


def test_values_read_off_the_wire_are_quoted_not_python_reprs():
    assert render.quoted(b"HTTP/1.1 200 OK") == '"HTTP/1.1 200 OK"'
    assert render.quoted("GET /\r\n") == '"GET /\\r\\n"'
    assert render.listed(["protocol_version"]) == "protocol_version" and render.listed([]) == "none"


def test_run_all_ends_with_one_overall_verdict(captures):
    good, bad = _result(captures["tls13"]), _result(captures["tls13"], passed=False, name="mitm")
    assert render.summary_text([good, good]).splitlines()[-1].startswith("verdict: all 2 scenarios passed")
    assert render.summary_text([good, bad]).splitlines()[-1] == \
        "verdict: SOME SCENARIOS FAILED — 1 of 2 passed (failed: mitm)"


def test_the_scenario_list_shows_each_scenarios_checks():
    from labctl import scenarios

    text = render.scenarios_text([(s.name, s.summary, s.checks) for s in scenarios.all_scenarios()])
    for scenario in scenarios.all_scenarios():
        assert f"{scenario.name} — {scenario.summary}" in text
        for check in scenario.checks:
            assert f"    - {check}" in text
    assert "✓" not in text and "✔" not in text          # nothing has run: nothing is marked passed


@pytest.mark.parametrize("version, suite, length", [
    (0x0303, 0xC02F, 8),    # TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: RFC 5288 explicit nonce
    (0x0303, 0x009C, 8),    # TLS_RSA_WITH_AES_128_GCM_SHA256
    (0x0303, 0xC0AC, 8),    # TLS_ECDHE_ECDSA_WITH_AES_128_CCM: RFC 6655
    (0x0303, 0x002F, 16),   # TLS_RSA_WITH_AES_128_CBC_SHA: an explicit IV of AES's block size
    (0x0303, 0x000A, 8),    # TLS_RSA_WITH_3DES_EDE_CBC_SHA: 3DES's block size
    (0x0303, 0xCCA8, 0),    # TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: RFC 7905, no explicit nonce
    (0x0304, 0x1301, 0),    # TLS 1.3: RFC 8446 section 5.3, the nonce is derived
])
def test_explicit_nonce_lengths_follow_the_rfcs(version, suite, length):
    from labctl.tls.constants import explicit_nonce_length

    assert explicit_nonce_length(version, suite) == length


def test_client_text_says_how_the_name_was_resolved_and_where_a_browsed_password_went():
    from labctl.render import client_text

    report = {"ok": True, "tls": True, "address": "10.77.0.20", "port": 443, "version": "TLSv1.3", "cipher": "X",
              "verify": True, "status": "HTTP/1.1 200 OK", "body_bytes": 66,
              "resolver": {"via": "dot", "address": "10.77.0.53", "port": 853}}
    assert "resolved by............. DNS over TLS, 10.77.0.53:853" in client_text(report)
    assert "resolved by" not in client_text({**report, "resolver": {"via": "system"}})
    browsed = {"ok": True, "browse": True, "hsts": [], "secret_sent_to": "http://www.lab.test/login",
               "steps": [{"method": "GET", "url": "http://www.lab.test/login", "status": "HTTP/1.1 301 Moved",
                          "location": "https://www.lab.test/login"},
                         {"upgraded": True, "url": "https://www.lab.test/login", "hsts": "www.lab.test"}]}
    text = client_text(browsed)
    assert "HSTS store.............. (empty)" in text
    assert "http://www.lab.test/login  HTTP/1.1 301 Moved → https://www.lab.test/login" in text
    assert "HSTS upgrade" in text and text.endswith("password sent to........ http://www.lab.test/login")
    assert "refused................. http: no form" in client_text({**browsed, "ok": False, "error_kind": "http",
                                                                    "error": "no form"})
