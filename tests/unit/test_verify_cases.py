"""The verification cases as declared: grading logic, and that the lab can serve every case."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labctl import certs
from labctl.errors import UsageError
from labctl.scenarios import verify

ROOT = Path(__file__).resolve().parents[2]


def test_a_refusal_for_another_reason_fails_the_case():
    expired = next(c for c in verify.CASES if c.name == "expired")
    wrong = verify.grade("safe", expired.safe, False, "Hostname mismatch, certificate is not valid for 'x'")
    assert not wrong.passed and "another reason" in wrong.why
    right = verify.grade("safe", expired.safe, False, "certificate has expired")
    assert right.passed


def test_connecting_where_a_refusal_is_declared_fails():
    expired = next(c for c in verify.CASES if c.name == "expired")
    assert not verify.grade("safe", expired.safe, True, "").passed
    assert verify.grade("careless", expired.careless, True, "").passed


def test_every_refusal_declares_its_reason():
    for case in verify.CASES:
        for expect in (case.safe, case.careless):
            assert expect.outcome in (verify.CONNECTS, verify.REFUSED)
            assert (expect.outcome == verify.REFUSED) == bool(expect.reason), case.name


def test_careless_client_differs_from_safe_only_on_server_certificates():
    for case in verify.CASES:
        differs = case.safe != case.careless
        assert differs == (case.group == "certificate" and case.safe.outcome == verify.REFUSED), case.name


def test_every_case_host_resolves_in_the_lab():
    compose = (ROOT / "compose.yaml").read_text()
    records = set(re.findall(r"--host-record=([a-z0-9.-]+),", compose))
    assert set(verify.HOSTS) <= records


def test_every_sni_case_has_its_certificate_folder():
    for case in verify.CASES:
        if case.port == 443 and case.host != "server.lab.test":
            assert case.host.split(".")[0] in certs.CASE_CERTS, case.name


def test_unknown_case_lists_the_valid_ones():
    with pytest.raises(UsageError, match=r"unknown case 'nope'; the cases are: valid-rsa, valid-ecdsa, chain"):
        verify.select(["nope"])


def test_client_command_placeholders_are_checked():
    verify.check_template("curl --cacert {ca} {url}")
    with pytest.raises(UsageError, match=r"bad placeholder 'hostname'"):
        verify.check_template("openssl s_client -connect {hostname}:443")
