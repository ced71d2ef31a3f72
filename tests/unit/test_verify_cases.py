"""The verification cases as declared: grading logic, and that the lab can serve every case."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labctl import certs
from labctl.errors import UsageError
from labctl.scenarios import Options, verify

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


# -- --client-cmd: how it is checked, and what it is graded on ---------------------------------------

@pytest.mark.parametrize("template, message", [
    ("curl {url!r}", r"bad placeholder 'url' \(written \{url!r\}\)"),
    ("curl {url:>40}", r"bad placeholder 'url' \(written \{url:>40\}\)"),
    ("curl {0}", r"bad placeholder '0'"),
    ("curl {}", r"bad placeholder ''"),
    ("curl {ca.__class__}", r"bad placeholder 'ca.__class__'"),
    ("curl {url[0]}", r"bad placeholder 'url\[0\]'"),
    ("awk '{print $1}' {url}", r"bad placeholder 'print \$1'"),
    ("echo }", r"Single '\}' encountered"),
    ("echo {", r"Single '\{' encountered|expected '\}'"),
])
def test_a_template_that_is_not_exactly_our_placeholders_is_refused(template, message):
    with pytest.raises(UsageError, match=message) as caught:
        verify.check_template(template)
    text = str(caught.value)
    assert "sh -c" in text and "user 'lab'" in text and "{{ or }}" in text and "\n" not in text


@pytest.mark.parametrize("template", ["", "   "])
def test_an_empty_template_is_refused(template):
    with pytest.raises(UsageError, match="--client-cmd is empty"):
        verify.check_template(template)


def test_literal_braces_are_written_doubled():
    verify.check_template("awk '{{print $1}}' < /dev/null; curl {url}")
    case = verify.select(["expired"])[0]
    assert verify._external_argv(case, "echo {{x}} {host}") == "echo {x} expired.lab.test"


@pytest.mark.parametrize("seconds", [-5.0, 0.0, -0.0, float("nan"), float("inf"), float("-inf"), "x", 1e9])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(seconds):
    """The one timeout setting (also --client-timeout, its older name) is checked before a run."""
    from labctl.lab import check_timeout

    with pytest.raises(UsageError, match=r"--timeout .*(must be more than 0|is not a number)"):
        check_timeout(seconds)


def test_bad_options_are_refused_before_anything_runs_on_the_lab():
    """run() checks first: None stands for the lab, which is never touched."""
    with pytest.raises(UsageError, match="bad placeholder"):
        verify.run(None, Options(("expired",), "curl {hostname}"))
    with pytest.raises(UsageError, match="--client-cmd is empty"):
        verify.run(None, Options(("expired",), ""))
    with pytest.raises(UsageError, match="no verification case selected, so nothing would be graded"):
        verify.check_options((), None)
    with pytest.raises(UsageError, match="graded on none of the selected cases .*mtls-none tests"):
        verify.run(None, Options(("mtls-none",), "curl {url}"))


def test_every_case_an_external_command_is_not_graded_on_says_why():
    for case in verify.CASES:
        why = verify.external_skip(case)
        assert bool(why) != case.for_external, case.name
        if why:
            assert why.startswith(case.name) and "\n" not in why
    assert "presents none" in verify.external_skip(verify.select(["mtls-none"])[0])


@pytest.fixture(scope="module")
def capture_of_nothing(tmp_path_factory):
    from labctl.tls.analyzer import analyze
    from labctl.capture import CaptureStats
    from tests import synth

    session = synth.plain_session(tmp_path_factory.mktemp("verify"), request=synth.DEFAULT_REQUEST,
                                  response=synth.DEFAULT_RESPONSE)
    return CaptureStats("verify", "/captures/verify.pcap", 100, 10, 10, 0, True, False), \
        analyze(session.pcap.read_bytes())


def _refused(reason: str) -> dict:
    return {"ok": False, "error": f"[SSL: {reason}] alert", "local_port": None}


def test_a_command_no_selected_case_can_grade_is_not_graded_not_failed(capture_of_nothing):
    """`run verify --case mtls-none --client-cmd 'curl {url}'`: the lab's clients pass, the command is
    "not graded" with the reason, and no failed check appears."""
    stats, observation = capture_of_nothing
    cases = verify.select(["mtls-none"])
    reports = [_refused("TLSV13_ALERT_CERTIFICATE_REQUIRED"), _refused("TLSV13_ALERT_CERTIFICATE_REQUIRED")]
    result = verify.judge(cases, reports, [None], stats, observation, "curl {url}")
    assert result.passed and all(c.passed for c in result.checks)
    assert [c.name for c in result.checks if "external" in c.name] == []
    assert result.external_verdict == "not graded"
    assert "mtls-none" in result.not_graded and "presents none" in result.not_graded["mtls-none"]
    doc = result.to_dict()
    assert doc["external_verdict"] == "not graded" and doc["external_not_graded"][0]["case"] == "mtls-none"

    text = result.text()
    assert "your command: not graded — no selected case can grade it (mtls-none tests the server's check" in text
    assert "✘" not in text


def test_a_command_graded_on_some_cases_says_which_it_was_not_graded_on(capture_of_nothing):
    stats, observation = capture_of_nothing
    cases = verify.select(["expired", "old-client"])
    reports = [_refused("CERTIFICATE_VERIFY_FAILED certificate has expired"), {"ok": True, "local_port": None},
               _refused("TLSV1_ALERT_PROTOCOL_VERSION"), _refused("TLSV1_ALERT_PROTOCOL_VERSION")]
    result = verify.judge(cases, reports, [(60, "curl: (60) certificate has expired"), None], stats, observation,
                          "curl --cacert {ca} {url}")
    assert result.passed and result.external_verdict == "graded"
    assert "external client: every case as expected" in [c.name for c in result.checks]
    assert list(result.not_graded) == ["old-client"]
    assert result.external_note().startswith("your command: not graded on old-client (they need a client")
    assert "needs client settings of its own (--min-version 1.0" in result.to_dict()["external_not_graded"][0]["reason"]


def test_without_a_command_there_is_no_external_verdict(capture_of_nothing):
    stats, observation = capture_of_nothing
    result = verify.judge(verify.select(["mtls-none"]), [_refused("CERTIFICATE_REQUIRED")] * 2, None, stats,
                          observation)
    assert result.external_verdict is None and result.external_note() == "" and result.passed
    assert result.to_dict()["external_not_graded"] == []
