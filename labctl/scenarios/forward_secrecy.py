"""forward-secrecy: steal the server key after recording: the RSA-key-exchange session opens, ECDHE and TLS 1.3 do not.

Record today, steal the server's key tomorrow: what can you read?

What it demonstrates: the attacker records three sessions that each carry a
secret, then steals the server's RSA private key. With TLS 1.2 and RSA key
exchange the client encrypted the pre-master secret to that very key, so the
recording plus the key yields the pre-master secret, the master secret, the
record keys and the plaintext: the secret, long after the fact. With ECDHE
(TLS 1.2) and with TLS 1.3 the key only signed an ephemeral key share; the
shared secret came from ephemeral keys that were never sent and are gone. The
same stolen key opens nothing. That is forward secrecy.

The decryption uses only the capture and the key (no key log); its result is
checked against tshark given the same key in the tests.

What to look for in the capture: three connections; in the RSA one the
ClientKeyExchange carries 256 bytes of RSA ciphertext (the encrypted
pre-master secret); in the ECDHE one it carries an X25519 public key.
"""

from __future__ import annotations

import time

from dataclasses import dataclass

from .. import attack, runner
from ..lab import Lab
from ..report import e, pre_lines
from ..tls import stolenkey
from ..tls.constants import TLS13, version_name
from ..verdict import Check, Json
from . import Options

NAME = "forward-secrecy"
TITLE = "Forward secrecy: a stolen server key opens RSA sessions, not ECDHE ones"
CHECKS = ("capture complete", "all three sessions completed", "no secret on the wire",
          "stolen key decrypts the RSA session to its secret", "stolen key cannot open TLS 1.2 ECDHE",
          "stolen key cannot open TLS 1.3")
SESSIONS = (("RSA key exchange (TLS 1.2)", ("--max-version", "1.2", "--ciphers", "AES128-GCM-SHA256")),
            ("ECDHE (TLS 1.2)", ("--max-version", "1.2", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256")),
            ("TLS 1.3", ()))


@dataclass
class ForwardSecrecyResult(attack.AttackResult):
    """The attack's panels, and in the report each session's decryption steps."""

    def extra_html(self) -> str:
        return steps_html(self.data) + (
            '<p class="small">Wireshark opens the RSA session of the capture beside this page with the same '
            'stolen key and no key log: <code>wireshark -o \'uat:rsa_keys:"KEY",""\' forward-secrecy.pcap</code>, '
            'where KEY is <code>server/server-rsa.key</code> in the lab\'s certificates folder '
            '(<code>labctl certs</code> says where).</p>')


def _short(value: str, n: int = 96) -> str:
    return value if len(value) <= n else value[:n] + f"… ({len(value)} chars)"


def steps_html(data: dict) -> str:
    """The decryption steps of each session the stolen key was tried on."""
    out = ['<h3>Decryption steps with the stolen key</h3>']
    rows = []
    for s in data.get("sessions", []):
        a = s.get("attempt") or {}
        rows.append(f"<tr><td>{e(s.get('label', ''))}</td><td>{e(a.get('key_exchange', '-'))}</td>"
                    f"<td>{'✔ DECRYPTED' if a.get('decrypted') else '✘ not decrypted'}</td>"
                    f"<td>{e(a.get('reason', 'not in the capture'))}</td></tr>")
    out.append('<table class="grid"><thead><tr><th>session</th><th>key exchange</th><th>stolen key</th>'
               '<th>why</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")
    for s in data.get("sessions", []):
        a = s.get("attempt") or {}
        if not a.get("steps"):
            continue
        items = "".join(f'<li><strong>{e(st["name"])}</strong><br><code>{e(_short(st["value"]))}</code>'
                        f'<br><span class="small">{e(st.get("note", ""))}</span></li>' for st in a["steps"])
        out.append(f'<h4>{e(s.get("label", ""))}: step by step</h4><ol class="steps">{items}</ol>')
        if a.get("decrypted") and a.get("client_data"):
            lines = [f"↑ {line}" for line in a["client_data"].split("\r\n") if line]
            out.append('<p class="small">What the recording plus the stolen key yield (no key log):</p>'
                       + pre_lines(lines))
    return "".join(out)


def steal_key(lab: Lab) -> bytes:
    """The server's RSA private key, as an attacker who broke in later would take it."""
    return (lab.certs_dir / "server" / "server-rsa.key").read_bytes()


def run(lab: Lab, options: Options = Options()) -> ForwardSecrecyResult:
    started = time.monotonic()
    secrets = [runner.new_secret() for _ in SESSIONS]
    runs = [[runner.SERVER_NAME, "--secret", secret, *args]
            for secret, (_, args) in zip(secrets, SESSIONS)]
    b = runner.batch(lab, NAME, runs)
    key = stolenkey.load_private_key(steal_key(lab))
    attempts: list[stolenkey.Attempt | None] = []
    for report in b.reports:
        conn = runner.connection_for(b.observation, report)
        if conn is None:
            attempts.append(None)
            continue
        try:
            attempts.append(stolenkey.attack(conn, key))
        except stolenkey.StolenKeyError as exc:
            attempts.append(stolenkey.Attempt(conn.flow.label, conn.version, "", "?", False, str(exc)))
    rsa, ecdhe, tls13 = attempts
    everywhere = [p for s in secrets for p in b.observation.find(s.encode())]
    checks = [
        runner.check_capture(b.stats),
        Check("all three sessions completed", all(r.get("ok") for r in b.reports),
              ", ".join(f"{r.get('version')} {r.get('cipher')}" if r.get("ok") else r.get("error", "?")
                               for r in b.reports)),
        Check("no secret on the wire", not everywhere, "searched every payload and stream without any key"),
        Check("stolen key decrypts the RSA session to its secret",
              rsa is not None and rsa.decrypted and secrets[0].encode() in rsa.client_data,
              rsa.reason if rsa else "no RSA session in the capture"),
        Check("stolen key cannot open TLS 1.2 ECDHE",
              ecdhe is not None and not ecdhe.decrypted and ecdhe.key_exchange.startswith("ECDHE"),
              ecdhe.reason if ecdhe else "no ECDHE session in the capture"),
        Check("stolen key cannot open TLS 1.3", tls13 is not None and not tls13.decrypted
              and tls13.version == TLS13, tls13.reason if tls13 else "no TLS 1.3 session in the capture"),
    ]
    left = []
    if rsa is not None:
        for step in rsa.steps:
            value = step.value if len(step.value) <= 40 else step.value[:36] + "…"
            left += [step.name, f"  {value}"]
    right = []
    for (label, _), attempt in zip(SESSIONS, attempts):
        right.append(label)
        if attempt is None:
            right.append("  not in the capture")
        else:
            right.append(f"  {'DECRYPTED' if attempt.decrypted else 'not decrypted'}: {attempt.key_exchange}")
            right.append(f"  {attempt.reason}")
    data: Json = {"sessions": [
        {"label": label, "secret": secret, "client": report,
         "attempt": None if a is None else {"key_exchange": a.key_exchange, "decrypted": a.decrypted,
                                            "reason": a.reason, "cipher": a.cipher,
                                            "version": version_name(a.version) if a.version else None,
                                            "steps": [{"name": s.name, "value": s.value, "note": s.note}
                                                      for s in a.steps],
                                            "client_data": a.client_data.decode("latin-1"),
                                            "server_data": a.server_data.decode("latin-1")}}
        for (label, _), secret, report, a in zip(SESSIONS, secrets, b.reports, attempts)]}
    notes = []
    if rsa is not None and rsa.decrypted:
        notes.append("the RSA session, decrypted from the recording with the stolen key alone (no key log):")
        notes += [f"  ↑ {line}" for line in rsa.client_data.decode("latin-1").split("\r\n") if line]
        status = rsa.server_data.split(b"\r\n", 1)[0].decode("latin-1")
        if status:
            notes.append(f"  ↓ {status}   ({len(rsa.server_data)} bytes from the server, decrypted)")
    return ForwardSecrecyResult(NAME, TITLE, checks, b.stats, b.observation, b.pcap,
                                seconds=time.monotonic() - started, lanes=b.lanes,
                                left=("the RSA session, step by step", left),
                                right=("the same key against each session", right), notes=notes, data=data,
                                secrets=secrets, revealed=[s for s, a in zip(secrets, attempts)
                                                           if a is not None and s.encode() in a.client_data])
