"""The scenarios on the real lab: honest verdicts, checked against the captured bytes and tshark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.tls.analyzer import analyze_file
from tests import tshark
from tests.conftest import assert_one_line_error

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runs(session_lab, tmp_path_factory) -> dict[str, tuple[dict, Path, Path]]:
    """Each scenario run once through the CLI, with its capture and key log saved."""
    folder = tmp_path_factory.mktemp("runs")
    out = {}
    for name in ("plaintext", "tls", "tls12"):
        pcap, keylog = folder / f"{name}.pcap", folder / f"{name}.keylog"
        keys = ["--keylog", str(keylog)] if name != "plaintext" else []      # plaintext makes no key log
        result = session_lab.run("run", name, "--json", "--pcap", str(pcap), *keys)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        out[name] = (json.loads(result.stdout), pcap, keylog)
    return out


def checks(doc: dict) -> dict[str, bool]:
    return {c["name"]: c["passed"] for c in doc["checks"]}


def test_plaintext_secret_is_in_the_captured_bytes(runs):
    doc, pcap, _ = runs["plaintext"]
    assert doc["passed"] and checks(doc)["secret readable on the wire"]
    assert doc["secret"].encode() in pcap.read_bytes()       # independent of the analyzer


@pytest.mark.parametrize("name", ["tls", "tls12"])
def test_tls_secret_is_not_in_the_captured_bytes(runs, name):
    doc, pcap, _ = runs[name]
    assert doc["passed"] and checks(doc)["secret not on the wire"]
    assert doc["secret"].encode() not in pcap.read_bytes()
    assert doc["secret"].startswith("s3cr3t-") and len(doc["secret"]) > 20


def test_secret_is_random_per_run(runs):
    assert len({doc["secret"] for doc, _, _ in runs.values()}) == 3


def test_tls12_shows_the_certificate_and_tls13_does_not(runs):
    tls12 = runs["tls12"][0]["observation"]["tls"][0]
    tls13 = runs["tls"][0]["observation"]["tls"][0]
    assert [c["subject"] for c in tls12["certificates_in_clear"]] == [
        "CN=server.lab.test,OU=lab server (RSA),O=tlslab"]
    assert "O=tlslab" in tls12["certificates_in_clear"][0]["issuer"]
    assert tls13["certificates_in_clear"] == []


@pytest.mark.parametrize("name", ["plaintext", "tls", "tls12"])
def test_dns_name_and_sni_are_the_servers_lab_name(runs, name):
    doc, pcap, _ = runs[name]
    queries = [d["name"] for d in doc["observation"]["dns"] if not d["response"]]
    assert queries == ["server.lab.test"]
    assert [r[0] for r in tshark.fields(pcap, "dns.flags.response == 0", "dns.qry.name")] == ["server.lab.test"]
    if name != "plaintext":
        assert doc["observation"]["tls"][0]["client_hello"]["sni"] == "server.lab.test"


@pytest.mark.parametrize("name", ["tls", "tls12"])
def test_analyzer_agrees_with_tshark(runs, name):
    _, pcap, _ = runs[name]
    obs = analyze_file(pcap)
    conn = obs.tls[0]
    sni = tshark.fields(pcap, "tls.handshake.type == 1", "tls.handshake.extensions_server_name")
    assert [row[0] for row in sni] == [conn.client_hello.sni]
    ours = {d: [(r.content_type, r.length) for r in conn.records if r.direction == d] for d in ("c2s", "s2c")}
    assert ours == tshark.records(pcap)
    suite, legacy, supported = tshark.fields(pcap, "tls.handshake.type == 2", "tls.handshake.ciphersuite",
                                             "tls.handshake.version", "tls.handshake.extensions.supported_version")[0]
    assert int(suite, 16) == conn.server_hello.cipher_suite
    assert int(supported or legacy, 16) == conn.server_hello.version


@pytest.mark.parametrize("name", ["tls", "tls12"])
def test_keylog_decryption_equals_tsharks(runs, name):
    doc, pcap, keylog = runs[name]
    theirs = tshark.decrypted_streams(pcap, keylog)
    assert doc["decrypted"]["c2s"].encode("latin-1") == theirs["c2s"]
    assert doc["decrypted"]["s2c"].encode("latin-1") == theirs["s2c"]
    assert doc["secret"].encode() in theirs["c2s"]
    assert keylog.stat().st_mode & 0o777 == 0o600


def test_run_all_prints_a_summary(session_lab):
    result = session_lab.run("run", "all")
    assert result.returncode == 0, result.stdout + result.stderr[-1500:]
    from labctl.scenarios import NAMES

    for name in NAMES:
        assert name in result.stdout
    assert "FAIL" not in result.stdout


def test_scenarios_lists_each_with_its_purpose(session_lab):
    doc = session_lab.run("scenarios", "--json").json()
    from labctl.scenarios import NAMES

    assert [s["name"] for s in doc["scenarios"]] == list(NAMES)
    assert NAMES[:3] == ("plaintext", "tls", "tls12")
    assert all(s["summary"] and s["checks"] for s in doc["scenarios"])


def test_unknown_scenario_lists_the_valid_ones(session_lab):
    result = session_lab.run("run", "tls14")
    assert result.returncode == 2
    assert_one_line_error(result, r"unknown scenario 'tls14'; the scenarios are: plaintext, tls, tls12, verify")


def test_pcap_under_a_file_fails_before_running(session_lab, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    before = session_lab.run("capture", "list", "--json").json()["captures"]
    result = session_lab.run("run", "tls", "--pcap", str(blocker / "tls.pcap"))
    assert result.returncode == 2
    assert_one_line_error(result, "is a file, not a folder")
    assert session_lab.run("capture", "list", "--json").json()["captures"] == before   # nothing ran


def test_scenario_leaves_no_capture_running(session_lab):
    session_lab.run("run", "tls")
    listing = session_lab.run("capture", "list", "--json").json()["captures"]
    assert not [c for c in listing if c["running"]]
    assert len([c for c in listing if c["name"].startswith("run-")]) <= 1


def test_each_scenario_reports_exactly_the_checks_it_declares(session_lab):
    """`labctl scenarios --json` publishes each scenario's CHECKS: they are the names its runs report."""
    from labctl import scenarios

    result = session_lab.run("run", "all", "--json")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-1500:]
    doc = result.json()
    published = {s["name"]: s["checks"] for s in session_lab.run("scenarios", "--json").json()["scenarios"]}
    assert [r["scenario"] for r in doc["results"]] == list(scenarios.NAMES)
    for run in doc["results"]:
        reported = [c["name"] for c in run["checks"]]
        assert reported == list(scenarios.load(run["scenario"]).checks) == published[run["scenario"]], run["scenario"]
    assert doc["passed"] is True
