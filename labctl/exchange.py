"""One client exchange judged on the wire (plaintext, tls, tls12): its result and the two views of it.

The result holds the secret the client carried (random per run), the
client's own report, and what the lab's key log decrypted the captured
records to; its terminal view sets the wire's bytes beside what still leaks,
its report view does the same in HTML. The exchange itself is run by
labctl.runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from . import render, report
from .certs import SERVER_NAME
from .report import e
from .tls.analyzer import C2S, S2C
from .verdict import Json, Result, verdict_line


@dataclass
class ExchangeResult(Result):
    """One client exchange judged on the wire (plaintext, tls, tls12): the secret it carried, the
    client's report, and what the key log decrypted (None where there is no key log)."""

    SCHEMA: ClassVar[str] = "tlslab.run/1"

    server_name: str = SERVER_NAME
    secret: str = ""
    client: dict = field(default_factory=dict)
    decrypted: dict[str, bytes] | None = field(repr=False, default=None)
    # What each encrypted record turned out to be, keyed by (direction, stream offset).
    notes: dict[tuple[str, int], str] = field(repr=False, default_factory=dict)

    def head(self) -> Json:
        return {"server_name": self.server_name, "secret": self.secret}

    def details(self) -> Json:
        return {"client": {k: v for k, v in self.client.items() if k != "peer_certificate"},
                "observation": self.observation.to_dict(),
                "decrypted": None if self.decrypted is None else
                {d: data.decode("latin-1") for d, data in self.decrypted.items()}}

    def text(self) -> str:
        """The wire beside what leaks, what the key log decrypted, the checks."""
        obs = self.observation
        lines = [f"{self.name} — {self.title}",
                 f"secret this run: {self.secret} (random; searched for in every captured byte)", ""]
        left_title = "on the wire (ciphertext)" if obs.tls else "on the wire (clear text)"
        lines.append(render.panels(left_title, render.wire_lines(obs, self.notes), "what still leaks",
                                   render.leak_lines(obs)))
        lines.append(render.ARROWS)
        if self.decrypted is not None:
            lines += ["", "decrypted with the lab's key log (an observer on the wire has none); "
                          "what the records marked → carried:"]
            lines += [f"  {line}" for line in self._decrypted_lines(96)]
        lines += [""] + render.check_lines(self.checks)
        lines.append(verdict_line(self))
        return "\n".join(lines)

    def html(self) -> str:
        """The terminal view's panels and decryption as HTML; the secret is shown only if it crossed in clear."""
        obs = self.observation
        if self.secret and not self.hidden():
            secret_line = (f'<p>secret this run: <code class="secret">{e(self.secret)}</code> — '
                           f'<strong>readable on the wire</strong> (see the excerpt below)</p>')
        else:
            secret_line = ('<p>secret this run: <em>not shown</em> — it never crossed the wire in clear, and '
                           'this page shows what the wire saw; the key log beside this page decrypts it in '
                           'Wireshark.</p>')
        left_title = "on the wire (ciphertext)" if obs.tls else "on the wire (clear text)"
        out = [secret_line,
               report.panels_html(left_title, report.pre_lines(render.wire_lines(obs, self.notes)),
                                  "what still leaks", report.leak_table(render.leak_lines(obs))),
               f'<p class="small">{e(render.ARROWS)}</p>']
        if self.decrypted is not None:
            out.append('<h3>Decrypted with the lab\'s key log</h3><p class="small">An observer on the wire has no '
                       'key log; the lab does. What the records marked → carried (the secret is masked):</p>'
                       + report.pre_lines(self._decrypted_lines()))
        return "".join(out)

    def _decrypted_lines(self, width: int = 0) -> list[str]:
        """The decrypted request, line by line (↑), and the response's status line (↓)."""
        assert self.decrypted is not None
        lines = [f"↑ {render.fit(line, width) if width else line}"
                 for line in self.decrypted[C2S].decode("latin-1").split("\r\n") if line]
        status = self.decrypted[S2C].split(b"\r\n", 1)[0].decode("latin-1")
        return lines + ([f"↓ {status}"] if status else [])

    def record_notes(self) -> dict[tuple[str, int], str]:
        return self.notes

    def hidden(self) -> list[str]:
        return [] if self.observation.find(self.secret.encode()) else [self.secret]
