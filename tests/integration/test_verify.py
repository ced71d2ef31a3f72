"""The verification matrix on the real lab: every case, both clients, and external clients graded."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509

from labctl.scenarios import verify
from tests.conftest import assert_one_line_error

pytestmark = pytest.mark.integration

OPENSSL = ("openssl s_client -brief -connect {host}:{port} -servername {host} -CAfile {ca} "
           "-verify_return_error -verify_hostname {host}")
CURL = "curl -sS --max-time 5 --cacert {ca} {url}"


@pytest.fixture(scope="module")
def matrix(session_lab) -> dict:
    result = session_lab.run("run", "verify", "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return json.loads(result.stdout)


def outcomes(doc: dict, client: str) -> dict[str, dict]:
    return {c["case"]: o for c in doc["cases"] for o in c["outcomes"] if o["client"] == client}


def test_every_case_gives_its_declared_outcome_for_both_clients(matrix):
    assert matrix["passed"]
    declared = {c.name: c for c in verify.CASES}
    assert [c["case"] for c in matrix["cases"]] == list(declared)
    for client, expect in (("safe", "safe"), ("careless", "careless")):
        for name, o in outcomes(matrix, client).items():
            wanted = getattr(declared[name], expect)
            assert o["actual"] == wanted.outcome, (name, client, o)
            assert wanted.reason in o["error"], (name, client, o)


def test_the_careless_client_connects_where_the_safe_one_refuses(matrix):
    safe, careless = outcomes(matrix, "safe"), outcomes(matrix, "careless")
    for name in ("expired", "not-yet-valid", "wrong-host", "self-signed", "untrusted-root", "incomplete-chain"):
        assert safe[name]["actual"] == "refused" and careless[name]["actual"] == "connects"


def test_each_certificate_is_wrong_only_in_the_declared_way(session_lab):
    """Expired must fail for expiry, not for its name: each case's certificate has exactly one defect."""
    cases = Path(session_lab.env["LAB_CERTS_DIR"]) / "server" / "cases"
    lab_ca = x509.load_pem_x509_certificate((cases.parents[1] / "ca" / "ca.crt").read_bytes())
    now = datetime.datetime.now(datetime.timezone.utc)

    def load(name: str) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates((cases / name / "cert.pem").read_bytes())

    def names(cert: x509.Certificate) -> list[str]:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)

    def in_date(cert: x509.Certificate) -> bool:
        return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc

    [expired] = load("expired")
    assert expired.not_valid_after_utc < now and names(expired) == ["expired.lab.test"]
    assert expired.issuer == lab_ca.subject
    [future] = load("not-yet-valid")
    assert future.not_valid_before_utc > now and names(future) == ["not-yet-valid.lab.test"]
    [wrong] = load("wrong-host")
    assert in_date(wrong) and names(wrong) == ["other.lab.test"] and wrong.issuer == lab_ca.subject
    [selfsigned] = load("self-signed")
    assert selfsigned.issuer == selfsigned.subject and in_date(selfsigned)
    assert names(selfsigned) == ["self-signed.lab.test"]
    [stranger] = load("untrusted-root")
    assert stranger.issuer != lab_ca.subject and in_date(stranger) and names(stranger) == ["untrusted-root.lab.test"]
    [leaf] = load("incomplete-chain")
    assert leaf.issuer != lab_ca.subject and in_date(leaf) and names(leaf) == ["incomplete-chain.lab.test"]
    leaf2, intermediate = load("chain")
    assert leaf2.issuer == intermediate.subject and intermediate.issuer == lab_ca.subject
    assert leaf.issuer == intermediate.subject          # same intermediate, just not sent


def test_refusals_are_on_the_wire(matrix):
    wire = {c["case"]: " ".join(c["wire"]) for c in matrix["cases"]}
    assert "alert from server: protocol_version" in wire["old-client"]
    assert "alert from server: protocol_version" in wire["tls12-server"]
    assert "alert from server: handshake_failure" in wire["no-shared-cipher"]
    assert "alert from client: certificate_expired" in wire["expired"]
    assert "alert from" not in wire["valid-rsa"]


@pytest.mark.parametrize("command", [CURL, OPENSSL], ids=["curl", "openssl"])
def test_external_clients_are_graded(session_lab, command):
    result = session_lab.run("run", "verify", "--json", "--client-cmd", command)
    doc = json.loads(result.stdout)
    external = outcomes(doc, "external")
    assert set(external) == {c.name for c in verify.CASES if c.for_external}
    assert result.returncode == 0 and doc["passed"], [o for o in external.values() if not o["passed"]]
    assert external["expired"]["actual"] == "refused" and external["valid-ecdsa"]["actual"] == "connects"
    # The checks it reports are the ones it declares, the graded command's after them.
    assert [c["name"] for c in doc["checks"]] == [*verify.CHECKS, verify.EXTERNAL_CHECK]


def test_a_careless_external_client_fails_the_grading(session_lab):
    """curl -k connects to everything: the grading must catch it."""
    result = session_lab.run("run", "verify", "--json", "--client-cmd", "curl -sS -k {url}")
    doc = json.loads(result.stdout)
    assert result.returncode == 1 and not doc["passed"]
    failed = {name for name, o in outcomes(doc, "external").items() if not o["passed"]}
    assert failed == {"expired", "not-yet-valid", "wrong-host", "self-signed", "untrusted-root", "incomplete-chain"}


def test_unknown_case(session_lab):
    result = session_lab.run("run", "verify", "--case", "expird")
    assert result.returncode == 2
    assert_one_line_error(result, r"unknown case 'expird'; the cases are: valid-rsa")


def test_external_command_that_does_not_exist(session_lab):
    result = session_lab.run("run", "verify", "--case", "expired", "--client-cmd", "tls-client-9000 {url}")
    assert result.returncode == 2
    assert_one_line_error(result, r"command not found in the client container: tls-client-9000")


def client_processes(session_lab) -> list[str]:
    # The container's own exec, not lab.exec: that one runs under timeout(1), which would be listed.
    result = session_lab.lab().container("client").exec_run(["sh", "-c", "cat /proc/[0-9]*/comm"])
    return sorted(result.output.decode().split())


def test_external_command_that_hangs_is_bounded_and_leaves_nothing(session_lab):
    before = client_processes(session_lab)
    result = session_lab.run("run", "verify", "--json", "--case", "expired", "--client-cmd", "sleep 300",
                             "--client-timeout", "1")
    doc = json.loads(result.stdout)
    [external] = [o for o in doc["cases"][0]["outcomes"] if o["client"] == "external"]
    assert result.returncode == 1 and external["actual"] == "timed out" and not external["passed"]
    assert "timed out after 1 s" in external["error"]
    after = client_processes(session_lab)
    assert after.count("sleep") == before.count("sleep") and "timeout" not in after
