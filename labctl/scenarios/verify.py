"""verify: a local badssl: every way the client's checks can fail, with expected outcomes and the wire's view.

A local, never-stale badssl, with the expected outcome of every case declared here.

What it demonstrates: the checks that make TLS worth having. The safe client
(the standard library's default context) refuses a certificate that is
expired, not yet valid, for another name, self-signed, from a root it does
not trust, or missing its intermediate; the careless client (verification
off) connects to all of them, so anyone could have been on the other end. It
also shows mutual TLS (the server checking the client) and protocol refusals
(old versions, a version mismatch, no shared cipher), which no client setting
overrides.

What to look for in the capture: each case is its own TCP connection; in the
protocol cases the server's refusal is an alert record in clear; with TLS 1.2
(the protocol cases' handshakes) the certificate crosses in clear; with TLS
1.3 the client's refusal is an encrypted alert and the connection closes.

Every certificate is made by trustme at `labctl certs` time with validity
relative to that moment (expired a day ago, valid from a month ahead), so no
case ever goes stale. Each case has its own name under lab.test, chosen by SNI
on the server (port 443), or its own port where the TLS settings differ.

External clients: `labctl run verify --client-cmd 'curl -sS --cacert {ca} {url}'`
runs any command inside the client container, as one shell string (`sh -c`)
as the client's user 'lab', against every server-certificate case and grades
it against the safe client's expectation (exit status 0 = connected).
Placeholders: {host} {port} {url} {ca} {cert} {key}, filled in shell-quoted;
a literal brace is written {{ or }}. The other cases are not graded for it
(external_skip says why): their outcome is set by what the case makes the
client do, which one command for every case does not vary.
"""

from __future__ import annotations

import shlex
import string
import time
from dataclasses import dataclass, field

from typing import ClassVar

from .. import capture, render, runner
from ..errors import UsageError
from ..lab import Lab
from ..report import e, pre_lines
from ..sequence import Event
from ..tls.analyzer import Observation, TlsConnection
from ..tls.constants import APPLICATION_DATA, version_name
from ..verdict import Check, Json, Result, verdict_line
from . import Options

NAME = "verify"
TITLE = "Certificate, mutual-TLS and protocol checks: safe versus careless client"
CHECKS = ("capture complete", "safe client: every case as expected", "careless client: every case as expected")
OPTIONS = ("--case", "--client-cmd")  # the run options it reads
# Reported after CHECKS when --client-cmd was graded on at least one selected case.
EXTERNAL_CHECK = "external client: every case as expected"

CONNECTS = "connects"
REFUSED = "refused"
CA = "/certs/ca.crt"
CLIENT_CERT = "/certs/client-good.crt"
CLIENT_KEY = "/certs/client-good.key"         # the "lab" user's own, mode 0600 (labctl/volumes.py)
UNTRUSTED_CERT = "/certs/client-untrusted.crt"
UNTRUSTED_KEY = "/certs/client-untrusted.key"
# OpenSSL 3 refuses TLS 1.0/1.1 at its default security level even as a client;
# the "old client" must lower it to be able to offer them at all.
OLD_CIPHERS = "DEFAULT:@SECLEVEL=0"
TIMED_OUT = (124, 137)        # timeout(1): the command ran out of time / had to be killed
PLACEHOLDERS = ("host", "port", "url", "ca", "cert", "key")
# How --client-cmd runs, for error messages and the option's help.
CLIENT_CMD_RUNS = ("it runs in the client container as one shell string (sh -c) as user 'lab'; "
                   "placeholders {host} {port} {url} {ca} {cert} {key} are filled in shell-quoted; "
                   "write a literal brace as {{ or }}")


@dataclass(frozen=True)
class Expect:
    outcome: str              # CONNECTS or REFUSED
    reason: str = ""          # a substring of the error the client must report

    def describe(self) -> str:
        return self.outcome + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class Case:
    """One way the checks can go; the expected outcomes live here and nowhere else."""

    name: str
    host: str
    port: int
    what: str
    safe: Expect
    careless: Expect
    args: tuple[str, ...] = ()          # extra client.py flags for both clients
    group: str = "certificate"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/"

    @property
    def for_external(self) -> bool:
        """An external command is the same for every case, so it is graded only where the
        client needs no case-specific settings: the server-certificate cases."""
        return self.group == "certificate"


_PRESENTS = {CLIENT_CERT: "one from the lab CA", UNTRUSTED_CERT: "one from a CA the server does not trust"}


def external_skip(case: Case) -> str:
    """Why --client-cmd is not graded on CASE ("" when it is), in one sentence."""
    if case.for_external:
        return ""
    if case.group == "mutual TLS":
        cert = case.args[case.args.index("--cert") + 1] if "--cert" in case.args else None
        presents = _PRESENTS.get(cert, "a certificate of its own") if cert else "none"
        return (f"{case.name} tests the server's check of the client certificate (the client presents "
                f"{presents}), which the case chooses, not the command")
    return (f"{case.name} needs client settings of its own ({' '.join(case.args)}), "
            "and the same command runs for every case")


CASES: tuple[Case, ...] = (
    Case("valid-rsa", "valid-rsa.lab.test", 443, "a good certificate with an RSA key",
         Expect(CONNECTS), Expect(CONNECTS)),
    Case("valid-ecdsa", "valid-ecdsa.lab.test", 443, "a good certificate with an ECDSA key",
         Expect(CONNECTS), Expect(CONNECTS)),
    Case("chain", "chain.lab.test", 443, "leaf signed by an intermediate; the server sends both",
         Expect(CONNECTS), Expect(CONNECTS)),
    Case("expired", "expired.lab.test", 443, "valid until yesterday",
         Expect(REFUSED, "certificate has expired"), Expect(CONNECTS)),
    Case("not-yet-valid", "not-yet-valid.lab.test", 443, "valid from a month from now",
         Expect(REFUSED, "certificate is not yet valid"), Expect(CONNECTS)),
    Case("wrong-host", "wrong-host.lab.test", 443, "a good certificate, but for other.lab.test",
         Expect(REFUSED, "Hostname mismatch"), Expect(CONNECTS)),
    Case("self-signed", "self-signed.lab.test", 443, "signed by its own key, no CA",
         Expect(REFUSED, "self-signed certificate"), Expect(CONNECTS)),
    Case("untrusted-root", "untrusted-root.lab.test", 443, "signed by a CA the client does not trust",
         Expect(REFUSED, "unable to get local issuer certificate"), Expect(CONNECTS)),
    Case("incomplete-chain", "incomplete-chain.lab.test", 443,
         "leaf signed by an intermediate the server does not send",
         Expect(REFUSED, "unable to get local issuer certificate"), Expect(CONNECTS)),
    Case("mtls-valid", "mtls.lab.test", 8443, "server requires a client certificate; the client has a good one",
         Expect(CONNECTS), Expect(CONNECTS), ("--cert", CLIENT_CERT, "--key", CLIENT_KEY), "mutual TLS"),
    Case("mtls-none", "mtls.lab.test", 8443, "server requires a client certificate; the client has none",
         Expect(REFUSED, "CERTIFICATE_REQUIRED"), Expect(REFUSED, "CERTIFICATE_REQUIRED"), (), "mutual TLS"),
    Case("mtls-untrusted", "mtls.lab.test", 8443, "the client's certificate is from a CA the server does not trust",
         Expect(REFUSED, "UNKNOWN_CA"), Expect(REFUSED, "UNKNOWN_CA"),
         ("--cert", UNTRUSTED_CERT, "--key", UNTRUSTED_KEY), "mutual TLS"),
    Case("old-client", "server.lab.test", 443, "a client that only offers TLS 1.0 and 1.1",
         Expect(REFUSED, "PROTOCOL_VERSION"), Expect(REFUSED, "PROTOCOL_VERSION"),
         ("--min-version", "1.0", "--max-version", "1.1", "--ciphers", OLD_CIPHERS), "protocol"),
    Case("tls12-server", "tls12-only.lab.test", 8444, "a server limited to TLS 1.2; the client requires 1.3",
         Expect(REFUSED, "PROTOCOL_VERSION"), Expect(REFUSED, "PROTOCOL_VERSION"),
         ("--min-version", "1.3"), "protocol"),
    Case("no-shared-cipher", "server.lab.test", 443, "the client offers only ECDSA suites; the server's "
         "certificate has an RSA key", Expect(REFUSED, "HANDSHAKE_FAILURE"), Expect(REFUSED, "HANDSHAKE_FAILURE"),
         ("--max-version", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"), "protocol"),
)
HOSTS = tuple(sorted({c.host for c in CASES}))


def select(names: list[str] | None) -> tuple[Case, ...]:
    """The cases named (each once, in the order given), or all of them when none is named."""
    if not names:
        return CASES
    known = {c.name: c for c in CASES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown case {unknown[0]!r}; the cases are: {', '.join(known)}")
    return tuple(known[n] for n in dict.fromkeys(names))


def check_options(cases: tuple[Case, ...], client_cmd: str | None = None) -> None:
    """Everything about a verify run that can be wrong before it starts; UsageError (exit 2).

    An empty selection would grade nothing at all; a --client-cmd must be a
    usable template (check_template), and at least one selected case must be
    one an external command can be graded on (the rest say "not graded" and
    why, external_skip).
    """
    if not cases:
        raise UsageError(f"no verification case selected, so nothing would be graded; the cases are: "
                         f"{', '.join(c.name for c in CASES)}")
    if client_cmd is not None:
        check_template(client_cmd)
        if not any(c.for_external for c in cases):
            usable = ", ".join(c.name for c in CASES if c.for_external)
            raise UsageError(f"--client-cmd would be graded on none of the selected cases "
                             f"({external_skip(cases[0])}); the cases it is graded on: {usable}")


@dataclass
class Outcome:
    client: str               # "safe", "careless" or "external"
    expected: Expect
    connected: bool
    error: str
    local_port: int | None
    passed: bool
    why: str                  # why it failed, or "" when it passed
    timed_out: bool = False

    @property
    def actual(self) -> str:
        if self.connected:
            return CONNECTS
        return "timed out" if self.timed_out else REFUSED

    def to_dict(self) -> dict:
        return {"client": self.client, "expected": self.expected.outcome, "expected_reason": self.expected.reason,
                "actual": self.actual, "error": self.error,
                "passed": self.passed, "why": self.why}


@dataclass
class CaseResult:
    case: Case
    outcomes: list[Outcome]
    wire: list[str] = field(default_factory=list)     # what the wire saw for this case

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    def to_dict(self) -> dict:
        c = self.case
        return {"case": c.name, "group": c.group, "host": c.host, "port": c.port, "what": c.what,
                "passed": self.passed, "outcomes": [o.to_dict() for o in self.outcomes], "wire": self.wire}


@dataclass
class VerifyResult(Result):
    """The matrix: per case, each client's outcome beside the expected one, and the wire's view."""

    SCHEMA: ClassVar[str] = "tlslab.verify/1"

    cases: list[CaseResult] = field(default_factory=list)
    external: str | None = None
    not_graded: dict[str, str] = field(default_factory=dict)    # case -> why --client-cmd was not graded there

    @property
    def external_verdict(self) -> str | None:
        """"graded" or "not graded" (no selected case could grade the command); None without --client-cmd."""
        if self.external is None:
            return None
        graded = any(o.client == "external" for r in self.cases for o in r.outcomes)
        return "graded" if graded else "not graded"

    def external_note(self) -> str:
        """One line on the cases --client-cmd was not graded on, and why ("" when it was graded on all)."""
        if self.external is None or not self.not_graded:
            return ""
        if self.external_verdict == "not graded":
            usable = ", ".join(c.name for c in CASES if c.for_external)
            reasons = "; ".join(self.not_graded.values())
            return (f"your command: not graded — no selected case can grade it ({reasons}); "
                    f"the cases that can: {usable}")
        return (f"your command: not graded on {', '.join(self.not_graded)} (they need a client certificate or "
                "client settings chosen per case; the same command runs for every case)")

    def head(self) -> Json:
        return {"external_client": self.external, "external_verdict": self.external_verdict,
                "external_not_graded": [{"case": name, "reason": why} for name, why in self.not_graded.items()]
                if self.external is not None else []}

    def details(self) -> Json:
        return {"cases": [r.to_dict() for r in self.cases]}

    def text(self) -> str:
        """The verification matrix: one row per case and client, expected beside actual."""
        rows = []
        for r in self.cases:
            for o in r.outcomes:
                rows.append((r.case.name if o.client == "safe" else "", o.client, o.expected.outcome, o.actual,
                             render.fit(o.error or "-", 44), "✔" if o.passed else "✘"))
        lines = [f"{self.name} — {self.title}", "",
                 render.table(("CASE", "CLIENT", "EXPECTED", "ACTUAL", "ERROR", ""), rows), "",
                 "what the wire saw (the safe client's connection):"]
        for r in self.cases:
            lines.append(f"  {r.case.name:<17} {'; '.join(r.wire)}")
        failed = [(r.case.name, o) for r in self.cases for o in r.outcomes if not o.passed]
        if failed:
            lines += ["", "not as declared:"] + [f"  {name} ({o.client}): {o.why}" for name, o in failed]
        note = self.external_note()
        if note:
            lines += ["", note]
        lines += [""] + render.check_lines(self.checks)
        lines.append(verdict_line(self))
        return "\n".join(lines)

    def html(self) -> str:
        """The verification matrix: expected beside actual, per case and client."""
        note = self.external_note()
        rows = []
        for r in self.cases:
            for o in r.outcomes:
                rows.append(f"<tr><td>{e(r.case.name if o.client == 'safe' else '')}</td><td>{e(o.client)}</td>"
                            f"<td>{e(o.expected.outcome)}</td><td>{e(o.actual)}</td><td>{e(o.error or '-')}</td>"
                            f"<td>{'✔' if o.passed else '✘ ' + e(o.why)}</td></tr>")
        return ('<table class="grid"><thead><tr><th>case</th><th>client</th><th>expected</th><th>actual</th>'
                '<th>error</th><th></th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
                + "<h4>What the wire saw (the safe client's connection)</h4>"
                + pre_lines([f"{r.case.name:<17} {'; '.join(r.wire)}" for r in self.cases])
                + (f'<p class="note">{e(note)}</p>' if note else ""))

    def diagrams(self, events: list[Event]) -> list[tuple[str, list[Event]]]:
        """One diagram per case, failing ones included: its clients' connections, each with the DNS
        lookup of the case's name that its client made just before it."""
        by_port = {t.flow.client_port: t.flow.label for t in self.observation.tls}
        first: dict[str, int] = {}
        for ev in events:
            first.setdefault(ev.flow, ev.frame)
        out = []
        for r in self.cases:
            flows = {by_port[o.local_port] for o in r.outcomes if o.local_port in by_port}
            for start in sorted(first[f] for f in flows if f in first):
                lookups = [ev.flow for ev in events if ev.dns_name == r.case.host and ev.frame < start
                           and ev.label.startswith("DNS query")]
                flows |= set(lookups[-1:])            # the query and its answer: one UDP flow
            ports = ", ".join(f"{o.client} client from port {o.local_port}" for o in r.outcomes
                              if o.local_port in by_port)
            out.append((f"{r.case.name}: {r.case.what} ({ports or 'no connection'})",
                        [ev for ev in events if ev.flow in flows]))
        return out


def grade(client: str, expect: Expect, connected: bool, error: str, local_port: int | None = None,
          timed_out: bool = False) -> Outcome:
    """Did the client do what the case declares, for the declared reason?"""
    if timed_out:                           # a hang is neither connecting nor refusing
        return Outcome(client, expect, False, error, local_port, False, error, timed_out=True)
    if expect.outcome == CONNECTS:
        ok = connected
        why = "" if ok else f"expected to connect, but refused: {error}"
    else:
        ok = not connected and (not expect.reason or client == "external" or expect.reason in error)
        if connected:
            why = "expected a refusal, but it connected"
        elif not ok:
            why = f"refused for another reason than {render.quoted(expect.reason)}: {error}"
        else:
            why = ""
    return Outcome(client, expect, connected, error, local_port, ok, why)


def _client_runs(cases: tuple[Case, ...]) -> list[list[str]]:
    runs = []
    for case in cases:
        for insecure in (False, True):
            args = [case.host, "--port", str(case.port), "--secret", runner.new_secret(),
                    *case.args]
            runs.append(args + (["--insecure"] if insecure else []))
    return runs


def check_template(template: str) -> None:
    """Refuse, before anything runs, a --client-cmd that is blank, has a stray brace, or a placeholder
    that is not exactly one of PLACEHOLDERS (no index, attribute, conversion or format spec)."""
    if not template.strip():
        raise UsageError(f"--client-cmd is empty: give a command such as 'curl -sS --cacert {{ca}} {{url}}' "
                         f"({CLIENT_CMD_RUNS})")
    try:
        fields = [(name, conversion, spec) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:         # "Single '}' encountered in format string"
        raise UsageError(f"--client-cmd: {exc}; {CLIENT_CMD_RUNS}") from None
    for name, conversion, spec in fields:
        if name not in PLACEHOLDERS or conversion or spec:
            written = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise UsageError(f"--client-cmd: bad placeholder {name!r} (written {written}); {CLIENT_CMD_RUNS}")


def _external_argv(case: Case, template: str) -> str:
    check_template(template)
    values = {"host": case.host, "port": case.port, "url": case.url, "ca": CA, "cert": CLIENT_CERT,
              "key": CLIENT_KEY}
    return template.format(**{k: shlex.quote(str(v)) for k, v in values.items()})


def _run_external(lab: Lab, cases: tuple[Case, ...], template: str, timeout: float) -> list[tuple[int, str] | None]:
    """Each case's command in the client container, bounded by `timeout`, its process group killed after."""
    results: list[tuple[int, str] | None] = []
    for case in cases:
        if not case.for_external:
            results.append(None)
            continue
        command = _external_argv(case, template)
        # timeout(1) puts the command in its own process group and kills all of it:
        # no orphaned curl or openssl is left behind when it hangs.
        # lab.exec's own bound comes later, so this timeout(1) is the one that acts and kills the
        # whole group (cut short by an outer one, it would leave its command running).
        status, out, err = lab.exec("client", ["timeout", "--kill-after=1", f"{timeout:g}", "sh", "-c", command],
                                    user="lab", timeout=timeout + 5)
        lines = [line.strip() for line in (err + out).splitlines() if line.strip()]
        # A refusing client's first error line says why (curl: "(60) SSL certificate
        # problem: ..."; openssl: "verify error:num=10:certificate has expired").
        errors = [line for line in lines if any(w in line.lower() for w in ("error", "problem", "fail", "alert"))]
        if status == 0:
            detail = "connected"
        else:
            detail = (errors or lines or [f"exit status {status}"])[0][:200]
        if status in TIMED_OUT:
            detail = f"timed out after {timeout:g} s (killed)"
        elif status == 127:
            raise UsageError(f"--client-cmd: command not found in the client container: "
                             f"{command.split()[0]} ({detail})")
        results.append((status, detail))
    return results


def _wire_view(conn: TlsConnection | None) -> list[str]:
    if conn is None:
        return ["no TLS connection seen"]
    lines = []
    if conn.version:
        lines.append(f"{version_name(conn.version)} {conn.server_hello.cipher_name if conn.server_hello else ''}"
                     .strip())
    for cert in conn.certificates[:1]:
        lines.append(f"certificate in clear: {cert.subject}")
    for alert in conn.alerts:
        who = "client" if alert.direction == "c2s" else "server"
        lines.append(f"alert from {who}: {alert.description}" + ("" if alert.encrypted else f" ({alert.level})"))
    app = sum(1 for r in conn.records if r.content_type == APPLICATION_DATA)
    lines.append(f"{app} encrypted record(s)")
    return lines


def check(options: Options) -> None:
    """Refuse an unknown --case or an unusable --client-cmd before anything runs (UsageError)."""
    check_options(select(list(options.cases)), options.client_cmd)


def run(lab: Lab, options: Options = Options()) -> VerifyResult:
    """The matrix on the lab, for the cases OPTIONS select (all by default). A --client-cmd may take
    the lab's timeout (``lab.timeout`` seconds, --timeout / LAB_TIMEOUT) per case. Bad options are
    refused before anything runs."""
    cases, client_cmd = select(list(options.cases)), options.client_cmd
    check_options(cases, client_cmd)
    started = time.monotonic()
    external: list[tuple[int, str] | None] = []

    def run_external() -> None:              # inside the same capture, after the lab's own clients
        assert client_cmd is not None
        external.extend(_run_external(lab, cases, client_cmd, lab.timeout))

    b = runner.batch(lab, NAME, _client_runs(cases), during=run_external if client_cmd else None)
    result = judge(cases, b.reports, external if client_cmd else None, b.stats, b.observation, client_cmd)
    result.pcap, result.seconds, result.lanes = b.pcap, time.monotonic() - started, b.lanes
    return result


def judge(cases: tuple[Case, ...], reports: list[dict], external: list[tuple[int, str] | None] | None,
          stats: capture.CaptureStats, observation: Observation, client_cmd: str | None = None) -> VerifyResult:
    """Grade one run: the lab's two clients' reports (safe, careless per case, in order), the external
    command's (status, detail) per case (None where it was not run), and the capture.

    The external command gets a check only if at least one case graded it;
    otherwise its verdict is "not graded" with the reasons (external_skip),
    never a failed check.
    """
    by_port = {t.flow.client_port: t for t in observation.tls}
    results = []
    for i, case in enumerate(cases):
        safe, careless = reports[2 * i], reports[2 * i + 1]
        outcomes = [grade("safe", case.safe, safe["ok"], safe.get("error", ""), safe.get("local_port")),
                    grade("careless", case.careless, careless["ok"], careless.get("error", ""),
                          careless.get("local_port"))]
        ran = external[i] if client_cmd and external else None
        if ran is not None:
            code, detail = ran
            outcomes.append(grade("external", case.safe, code == 0, detail, timed_out=code in TIMED_OUT))
        results.append(CaseResult(case, outcomes, _wire_view(by_port.get(int(safe.get("local_port") or 0)))))
    checks = [runner.check_capture(stats)]
    for client in ("safe", "careless", "external"):
        graded = [(r.case.name, o) for r in results for o in r.outcomes if o.client == client]
        if client == "external" and not graded:
            continue          # no --client-cmd, or no selected case could grade it: "not graded", not a failure
        bad = [name for name, o in graded if not o.passed]
        checks.append(Check(f"{client} client: every case as expected", bool(graded) and not bad,
                                   f"failed: {', '.join(bad)}" if bad else f"{render.counted(len(graded), 'case')} as declared"))
    not_graded = {c.name: external_skip(c) for c in cases if not c.for_external} if client_cmd else {}
    return VerifyResult(NAME, TITLE, checks, stats, observation, cases=results, external=client_cmd,
                        not_graded=not_graded)
