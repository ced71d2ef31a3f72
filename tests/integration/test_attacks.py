"""Attack scenarios on the real lab: each verdict flips with the defence, computed from what the attacker got."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def run(session_lab, name: str) -> dict:
    result = session_lab.run("run", name, "--json")
    doc = json.loads(result.stdout)
    assert result.returncode == (0 if doc["passed"] else 1)
    return doc


def checks(doc: dict) -> dict[str, bool]:
    return {c["name"]: c["passed"] for c in doc["checks"]}


def secret_of(report: dict) -> str:
    return report["request"].split("session=")[1].split("\r\n")[0] if report.get("request") else ""


@pytest.mark.parametrize("name", ["mitm", "dns-spoof"])
def test_interception_fails_against_the_safe_client_and_works_against_the_careless_one(session_lab, name):
    doc = run(session_lab, name)
    assert doc["passed"], doc["checks"]
    safe, careless, log = doc["safe_client"], doc["careless_client"], doc["attacker_log"]
    # Verdicts from the attacker's own output: the careless client's secret is there, the safe one's is not.
    careless_secret = secret_of(careless)
    assert careless_secret and any(careless_secret in json.dumps(e) for e in log)
    assert not safe["ok"] and safe["error_kind"] == "certificate"
    assert not any("request in clear" == e["event"] and e["client"].endswith(f":{safe['local_port']}") for e in log)
    assert any(e["event"] == "handshake failed" and e["client"].endswith(f":{safe['local_port']}") for e in log)


def test_dns_spoof_answer_is_in_the_capture(session_lab):
    doc = run(session_lab, "dns-spoof")
    net = session_lab.lab().net()
    answers = doc["dns_answers"]
    assert answers and all(a["answers"] == [f"{net}.254"] and a["src"] == f"{net}.53" for a in answers)
    assert doc["safe_client"]["address"] == f"{net}.254"


def test_interception_is_removed_afterwards(session_lab):
    run(session_lab, "mitm")
    _, rules, _ = session_lab.lab().exec("wire", ["iptables", "-t", "nat", "-S", "PREROUTING"])
    assert "REDIRECT" not in rules
    result = session_lab.run("run", "tls", "--json")      # and the lab is a normal lab again
    assert json.loads(result.stdout)["passed"]


def test_downgrades_are_refused_with_alerts_on_the_wire(session_lab):
    doc = run(session_lab, "downgrade")
    assert doc["passed"], doc["checks"]
    got = checks(doc)
    assert got["old client refused by the safe server (alert in clear)"]
    assert got["no compression offered or chosen"]


def test_traffic_analysis_accuracy_falls_to_chance_with_padding(session_lab):
    doc = run(session_lab, "traffic-analysis")
    plain, padded = doc["without_padding"], doc["with_padding"]
    assert doc["documents"] >= 8 and plain["trials"] >= 100 and padded["trials"] >= 100
    assert plain["accuracy"] >= 0.95
    assert padded["accuracy"] <= 1 / doc["documents"] + 0.10
    assert len(set(plain["profiles"].values())) == doc["documents"]      # every size distinct
    assert len(set(padded["profiles"].values())) == 1                    # all the same once padded


def test_stolen_key_decryption_matches_tshark_byte_for_byte(session_lab, tmp_path):
    from pathlib import Path

    from tests import tshark

    pcap = tmp_path / "fs.pcap"
    result = session_lab.run("run", "forward-secrecy", "--json", "--pcap", str(pcap))
    doc = json.loads(result.stdout)
    assert doc["passed"], doc["checks"]
    key = Path(session_lab.env["LAB_CERTS_DIR"]) / "server" / "server-rsa.key"
    rsa, ecdhe, tls13 = doc["sessions"]
    theirs = tshark.decrypted_streams(pcap, None, stream=0, rsa_key=key)     # the RSA session came first
    assert rsa["attempt"]["client_data"].encode("latin-1") == theirs["c2s"]
    assert rsa["attempt"]["server_data"].encode("latin-1") == theirs["s2c"]
    assert rsa["secret"].encode() in theirs["c2s"]
    # tshark cannot open the forward-secret ones with the key either.
    assert tshark.decrypted_streams(pcap, None, stream=1, rsa_key=key) == {"c2s": b"", "s2c": b""}
    assert not ecdhe["attempt"]["decrypted"] and not tls13["attempt"]["decrypted"]


def test_stolen_key_cli_with_the_wrong_key_says_why(session_lab, tmp_path):
    from pathlib import Path

    from tests.conftest import assert_one_line_error

    pcap = tmp_path / "fs.pcap"
    session_lab.run("run", "forward-secrecy", "--pcap", str(pcap))
    certs_dir = Path(session_lab.env["LAB_CERTS_DIR"])
    wrong = session_lab.run("stolen-key", str(pcap), "--key", str(certs_dir / "server" / "cases" / "legacy" / "key.pem"),
                            "--json")
    attempts = json.loads(wrong.stdout)["attempts"]
    assert wrong.returncode == 1 and not any(a["decrypted"] for a in attempts)
    assert "does not decrypt this session's pre-master secret" in attempts[0]["reason"]
    ec = session_lab.run("stolen-key", str(pcap), "--key", str(certs_dir / "server" / "server-ecdsa.key"))
    assert_one_line_error(ec, "not an RSA private key")
