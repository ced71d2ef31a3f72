"""Running one exchange on the lab and judging it: the parts every scenario shares.

An exchange is: a fresh capture on the wire, one run of the client carrying a
secret that is random for this run, the capture stopped (it must be complete:
no kernel drops), the pcap and the client's key log brought to the host, and
the analyzer's Observation of the pcap. Scenarios turn that into Checks; each
Check is computed from the captured bytes (or the client's own report), never
from configuration.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from . import attack, capture, render, turn
from .exchange import ExchangeResult
from .tls import decrypt
from .tls.analyzer import C2S, S2C, Observation, TlsConnection, analyze
from .tls.constants import ALERT, ALERTS, APPLICATION_DATA, HANDSHAKE, TLS13, handshake_name, version_name
from .tls.records import split_handshake
from .capture import CaptureStats
from .certs import SERVER_NAME
from .errors import CaptureError, LabError
from .interrupts import interruptible, shielded
from .lab import TIMEOUT_SETTING, Lab
from .sequence import Lanes
from .verdict import Check, Result

RUN_PREFIX = "run-"      # a scenario's capture stays on the wire until the next run replaces it
# The check of the scenarios that decrypt their capture with the client's NSS key log (check_decryption):
# their client keeps one, which `run NAME --keylog FILE` saves.
KEYLOG_CHECK = "ciphertext on the wire is the request (decrypted with the key log)"
_KEYLOG_LINE = re.compile(r"^[A-Z_0-9]+ [0-9a-f]{64} [0-9a-f]+$")


@dataclass
class Exchange:
    secret: str
    client: dict                # client.py's report
    stats: CaptureStats
    pcap: bytes = field(repr=False)
    keylog: str = field(repr=False)
    observation: Observation = field(repr=False)
    lanes: Lanes | None = field(repr=False, default=None)


def new_secret() -> str:
    """A secret that exists only for this run: finding it on the wire cannot be a coincidence."""
    return "s3cr3t-" + secrets.token_urlsafe(18)


def exchange(lab: Lab, label: str, client_args: list[str], keylog: bool = True) -> Exchange:
    """Capture one client run on the wire; return the report, the pcap, the key log and the observation."""
    secret = new_secret()
    b = batch(lab, label, [[SERVER_NAME, "--secret", secret, *client_args]], keylog=keylog)
    return Exchange(secret, b.reports[0], b.stats, b.pcap, b.keylog, b.observation, b.lanes)


# -- checks shared by scenarios ----------------------------------------------------------

def check_capture(stats: CaptureStats) -> Check:
    return Check("capture complete", stats.complete and stats.packets > 0,
                 f"{stats.packets} packets, {stats.dropped_by_kernel} dropped by the kernel")


def check_client(report: dict, expect_version: int | None = None) -> Check:
    """Did the client's exchange succeed (over EXPECT_VERSION, a protocol version code, if given)?"""
    if not report.get("ok"):
        return Check("client exchange succeeded", False, f"{report.get('error_kind')}: {report.get('error')}")
    got = report.get("version") or "plain TCP"            # the ssl module's name: "TLSv1.3"
    ok = expect_version is None or got == version_name(expect_version).replace("TLS ", "TLSv")
    return Check("client exchange succeeded", ok, f"{report.get('status')} over {got}")


def check_secret_absent(obs: Observation, secret: str) -> Check:
    places = obs.find(secret.encode())
    searched = sum(len(p) for p in obs.payloads)
    return Check("secret not on the wire", not places,
                 f"searched {searched} payload bytes and {len(obs.streams)} reassembled streams"
                 + (f"; found in {', '.join(places[:3])}" if places else ""))


def check_secret_present(obs: Observation, secret: str) -> Check:
    places = obs.find(secret.encode())
    return Check("secret readable on the wire", bool(places),
                 f"found in {', '.join(places[:3])}" if places else "not found in any payload or stream")


def check_dns_leak(obs: Observation, name: str, lab: Lab) -> Check:
    client, dns = lab.address("client"), lab.address("dns")
    queries = [d for d in obs.dns if not d.response and d.src == client and d.dst == dns]
    names = sorted({d.name for d in queries})
    return Check("DNS query leaks the name", names == [name],
                 f"queries {client} → {dns}: {', '.join(names) or 'none'}")


def tls_connection(obs: Observation, lab: Lab) -> TlsConnection | None:
    server = lab.address("server")
    return next((t for t in obs.tls if t.flow.server == server and t.flow.server_port == 443), None)


def check_tls_seen(conn: TlsConnection | None, expect: int) -> Check:
    """Did the ServerHello on the wire negotiate EXPECT (a protocol version code, e.g. TLS13)?"""
    name = f"{version_name(expect)} negotiated (ServerHello on the wire)"
    if conn is None or conn.server_hello is None:
        return Check(name, False, "no TLS handshake to the server's port 443 in the capture")
    return Check(name, conn.version == expect, f"{version_name(conn.server_hello.version)}, {conn.server_hello.cipher_name}")


def check_sni_leak(conn: TlsConnection | None, name: str) -> Check:
    sni = conn.client_hello.sni if conn and conn.client_hello else None
    return Check("SNI leaks the name", sni == name, f"ClientHello server_name = {render.quoted(sni) if sni is not None else '(none)'}")


def record_notes(conn: TlsConnection, plain: list[decrypt.Plaintext]) -> dict[tuple[str, int], str]:
    """Label each decrypted record for the view: what the ciphertext on the left really was."""
    notes = {}
    for p in plain:
        record = conn.records[p.index]
        if p.content_type == HANDSHAKE:
            text = ", ".join(handshake_name(message[0]) for message in split_handshake(p.data)[0])
        elif p.content_type == APPLICATION_DATA:
            text = p.data.split(b"\r\n", 1)[0].decode("latin-1")[:40]
        elif p.content_type == ALERT:
            text = f"alert {ALERTS.get(p.data[1], str(p.data[1]))}" if len(p.data) >= 2 else "alert"
        else:
            text = f"content type {p.content_type}"
        notes[(record.direction, record.offset)] = text
    return notes


def check_decryption(conn: TlsConnection | None, keylog: str, report: dict, secret: str
                     ) -> tuple[Check, dict[str, bytes] | None, dict[tuple[str, int], str]]:
    """Decrypt the captured records with the client's key log: are they exactly the request we sent?

    Returns the check, what each direction decrypted to (None if nothing
    was), and what each record carried (record_notes).
    """
    name = KEYLOG_CHECK
    if conn is None or conn.client_hello is None or conn.server_hello is None:
        return Check(name, False, "no complete handshake to decrypt"), None, {}
    try:
        plain = decrypt.decrypt_connection(
            decrypt.captured(conn.records),
            decrypt.KeyLog.parse(keylog), version=conn.server_hello.version,
            cipher_suite=conn.server_hello.cipher_suite, client_random=conn.client_hello.random,
            server_random=conn.server_hello.random)
    except decrypt.DecryptError as exc:
        return Check(name, False, str(exc)), None, {}
    sent = decrypt.application_data(plain, C2S)
    received = decrypt.application_data(plain, S2C)
    request = report.get("request", "").encode("latin-1")
    ok = bool(request) and sent == request and secret.encode() in sent
    records = sum(1 for p in plain if p.direction == C2S and p.content_type == APPLICATION_DATA)
    evidence = (f"{records} client application_data record(s) decrypt to the {len(sent)}-byte request"
                if ok else f"decrypted {len(sent)} bytes, expected the {len(request)}-byte request")
    return Check(name, ok, evidence), {C2S: sent, S2C: received}, record_notes(conn, plain)


def tls_checks(version: int) -> tuple[str, ...]:
    """The names of the checks tls_scenario reports for VERSION (TLS12 or TLS13), in order."""
    return ("capture complete", "client exchange succeeded", f"{version_name(version)} negotiated (ServerHello on the wire)",
            "secret not on the wire", "SNI leaks the name", "DNS query leaks the name",
            "certificate not in clear" if version == TLS13 else "certificate readable in clear", KEYLOG_CHECK)


def check_certificate(conn: TlsConnection | None, version: int) -> Check:
    """What an observer reads of the server's certificate on the wire.

    TLS 1.3 sends the Certificate message encrypted (RFC 8446 section 4.4.2,
    after EncryptedExtensions): none may be readable. TLS 1.2 sends it in
    clear (RFC 5246 section 7.4.2): the leaf must be readable, naming the
    server.
    """
    certs = conn.certificates if conn else []
    if version == TLS13:
        hidden = conn is not None and not certs
        return Check("certificate not in clear", hidden,
                     "TLS 1.3 sends the Certificate encrypted" if hidden else f"{len(certs)} certificate(s) readable")
    leaf = certs[0] if certs else None
    return Check("certificate readable in clear",
                 leaf is not None and f"CN={SERVER_NAME}" in leaf.subject and SERVER_NAME in leaf.sans,
                 f"subject {leaf.subject}; issuer {leaf.issuer}" if leaf else "no Certificate message in clear")


def tls_scenario(lab: Lab, name: str, title: str, client_args: list[str], version: int) -> ExchangeResult:
    """One TLS exchange carrying a random secret, judged on the wire (the tls and tls12 scenarios).

    The checks, in order (tls_checks): the capture, the client, the
    negotiated VERSION, the secret absent, the SNI and DNS leaks, what the
    wire shows of the certificate (check_certificate), and the key-log
    decryption.
    """
    started = time.monotonic()
    ex = exchange(lab, name, client_args)
    obs = ex.observation
    conn = tls_connection(obs, lab)
    decrypted_check, decrypted, notes = check_decryption(conn, ex.keylog, ex.client, ex.secret)
    checks = [check_capture(ex.stats), check_client(ex.client, version), check_tls_seen(conn, version),
              check_secret_absent(obs, ex.secret), check_sni_leak(conn, SERVER_NAME),
              check_dns_leak(obs, SERVER_NAME, lab), check_certificate(conn, version), decrypted_check]
    return finish(ExchangeResult(name, title, checks, ex.stats, obs, ex.pcap, ex.keylog, lanes=ex.lanes,
                                 secret=ex.secret, client=ex.client, decrypted=decrypted, notes=notes), started)


R = TypeVar("R", bound=Result)


def finish(result: R, started: float) -> R:
    """RESULT with its run time (seconds since STARTED, time.monotonic())."""
    result.seconds = time.monotonic() - started
    return result


@dataclass
class Batch:
    reports: list[dict]
    stats: CaptureStats
    pcap: bytes = field(repr=False)
    observation: Observation = field(repr=False)
    attacker_log: list[dict] = field(default_factory=list)
    keylog: str = field(repr=False, default="")
    lanes: Lanes | None = field(repr=False, default=None)


def batch(lab: Lab, label: str, runs: list[list[str]], attacker: bool = False,
          spoof_dns: str | None = None, buffer_mib: int | None = None, parallel: int = 1,
          during: Callable[[], None] | None = None, keylog: bool = False, strip: bool = False) -> Batch:
    """Many client runs (`client.py --batch`) in one capture, optionally with the wire attacking.

    Each client connection may take the lab's timeout (``lab.timeout``
    seconds, --timeout / LAB_TIMEOUT); the batch as a whole, that much per
    run in sequence. With the attacker on, the capture records both
    directions on the wire (`-Q inout`): the wire answers the client itself
    instead of forwarding, and what it sends would otherwise be missing.

    Interrupted at any instant (Ctrl-C, SIGTERM), it leaves nothing running:
    starting and stopping are shielded from the signal (see interrupts), and
    on the way out the run's client processes, the attacker and the capture
    are stopped before the interrupt goes on up. STRIP makes the attacker
    sslstrip the client's plain HTTP instead of intercepting its TLS.
    """
    if lab.turn_token is None:
        # Called on its own (a test, a benchmark): the run takes the lab's turn itself.
        with turn.taken(lab, f"run {label}", lambda _: None):
            return batch(lab, label, runs, attacker, spoof_dns, buffer_mib, parallel, during, keylog, strip)
    name = f"{RUN_PREFIX}{label}-{uuid.uuid4().hex[:8]}"
    keylog_path = f"/tmp/{name}.keylog"
    runs = [[*run, "--timeout", f"{lab.timeout:g}"] for run in runs]
    if keylog:
        runs = [[*run, "--keylog", keylog_path] for run in runs]
    argv = ["python3", "/app/client.py", "--batch", json.dumps(runs)]
    if parallel > 1:
        argv += ["--parallel", str(parallel)]
    if keylog:
        # The key log comes back on stderr of the same exec (one round trip
        # fewer), and leaves no file behind in the client container.
        argv = ["sh", "-c", f"{shlex.join(argv)}; status=$?; "
                            f"cat {keylog_path} >&2 2>/dev/null; rm -f {keylog_path}; exit $status"]
    limit = lab.timeout * (-(-len(runs) // parallel) + 1)
    events: list[dict] = []
    captured = attacking = finished = False
    stats: CaptureStats | None = None
    with shielded():
        try:
            capture.start(lab, name, buffer_mib, replace=RUN_PREFIX, direction="inout" if attacker else "in")
            captured = True
            if attacker:
                attacking = True        # set first: a half-done start is undone by stop
                attack.start(lab, spoof_dns, strip)
            lab.run_tag = name
            with interruptible():
                status, out, err = lab.exec("client", argv, user="lab", timeout=limit)
                if during is not None:
                    during()                      # more traffic for the same capture (external clients)
            finished = True
        finally:
            lab.run_tag = None
            # Always, even on Ctrl-C: no client still talking, no attacker, no stray tcpdump.
            try:
                if not finished and captured:
                    lab.kill_run_processes(name)
            finally:
                try:
                    if attacking:
                        events = attack.stop(lab)
                finally:
                    if captured:
                        stats = capture.stop(lab, name)
    assert stats is not None
    if status == 124 or status == 137:
        raise LabError(f"the client's {len(runs)} exchange(s) did not finish within {limit:g} s "
                       f"({lab.timeout:g} s each; {TIMEOUT_SETTING} sets it) — a loaded machine needs more, "
                       f"or a service is down (`labctl{lab.flag} status`)")
    try:
        reports = json.loads(out)
    except json.JSONDecodeError:
        raise LabError(f"the client's batch printed no report: {(err.strip().splitlines() or ['?'])[-1]}") from None
    slow = [r for r in reports if isinstance(r, dict) and r.get("error_kind") == "timeout"]
    if slow:
        # A connection that ran out of time says nothing about TLS: no verdict from it.
        raise LabError(f"{len(slow)} of the client's {len(reports)} connection(s) timed out after "
                       f"{lab.timeout:g} s ({TIMEOUT_SETTING} sets it; a loaded machine needs more), "
                       "so no verdict is drawn")
    if not stats.complete:
        raise CaptureError(f"capture {name} is incomplete ({stats.dropped_by_kernel} packets dropped by the "
                           "kernel): no verdict drawn from it")
    pcap = capture.read(lab, name)
    keys = "".join(line + "\n" for line in err.splitlines() if _KEYLOG_LINE.match(line)) if keylog else ""
    return Batch(reports, stats, pcap, analyze(pcap, name=f"capture {name}"), events, keys, Lanes.of(lab))


def connection_for(obs: Observation, report: dict) -> TlsConnection | None:
    """The TLS connection a client run made, found by its local port (the lab's bookkeeping)."""
    port = report.get("local_port")
    return next((t for t in obs.tls if t.flow.client_port == port), None)
