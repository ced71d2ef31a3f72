"""`labctl report`: scenario results as one self-contained HTML page.

Pure rendering (results in, HTML strings out) plus write_report(), which
writes index.html with each scenario's pcap and key log beside it. The page
fetches nothing: CSS and SVG are inline, links point only at the files next
to it. Every string that came from the lab or the wire is escaped.

Styles never rely on colour alone (greyscale printing): encrypted records are
solid lines with a padlock, clear text dashed, TCP control dotted; the
padded bars are hatched.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from . import capture, render
from .errors import LabError
from .files import PRIVATE, install, shown, write_partial
from .tls.analyzer import C2S, Observation
from .tls.constants import alert_name, handshake_name

LANES = ("client", "wire", "server", "dns")   # the wire in the middle: every arrow crosses it
MAX_EVENTS = 40


class ReportError(LabError):
    """The report could not be written."""


def e(value: object) -> str:
    """Escape for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


# -- the exchange as events ---------------------------------------------------------------

@dataclass
class Event:
    time: float
    src: str
    dst: str
    label: str
    size: int
    kind: str            # "enc", "clear" or "control"
    note: str = ""       # what an encrypted record carried (from the lab's key log), if known


def _tcp_flags(flags: int) -> str:
    names = [n for bit, n in ((0x02, "SYN"), (0x01, "FIN"), (0x04, "RST")) if flags & bit]
    if flags & 0x10 and names:
        names.append("ACK")
    return "-".join(names)


def _dns_label(obs: Observation, t: float, src: str) -> str:
    match = next((d for d in obs.dns if abs(d.time - t) < 1e-5 and d.src == src), None)
    if match is None:
        return "DNS"
    if match.response:
        return f"DNS answer {match.qtype} {match.name} → {', '.join(match.answers) or 'none'}"
    return f"DNS query {match.qtype} {match.name}"


def _record_events(obs: Observation, notes: dict) -> list[Event]:
    out = []
    for conn in obs.tls:
        ends = {C2S: (conn.flow.client, conn.flow.server), "s2c": (conn.flow.server, conn.flow.client)}
        after_ccs = {C2S: False, "s2c": False}
        for r in conn.records:
            # After ChangeCipherSpec everything in that direction is encrypted (TLS 1.2 Finished too).
            encrypted = r.content_type == 23 or (after_ccs[r.direction] and r.content_type != 20)
            if r.content_type == 20:
                after_ccs[r.direction] = True
            label = r.type_name
            if not encrypted and r.content_type == 22 and r.fragment:
                label = handshake_name(r.fragment[0])
            elif not encrypted and r.content_type == 21 and len(r.fragment) >= 2:
                label = f"alert {alert_name(r.fragment[1])}"
            elif encrypted:
                label = f"{r.type_name} (encrypted)"
            note = notes.get((r.direction, r.offset), "") if len(obs.tls) == 1 else ""
            src, dst = ends[r.direction]
            out.append(Event(r.time, src, dst, label, r.length, "enc" if encrypted else "clear", note))
    return out


def events(result) -> list[Event]:
    """Every DNS message, TCP control packet, clear TCP segment and TLS record, in capture order."""
    obs = result.observation
    notes = getattr(result, "notes", None) or {}
    tls_flows = set()
    for conn in obs.tls:
        f = conn.flow
        tls_flows |= {(f.client, f.client_port, f.server, f.server_port),
                      (f.server, f.server_port, f.client, f.client_port)}
    out: list[Event] = []
    for p in obs.packets:
        if p.proto == "udp":
            label = _dns_label(obs, p.time, p.src) if 53 in (p.sport, p.dport) else f"UDP :{p.sport}→:{p.dport}"
            out.append(Event(p.time, p.src, p.dst, label, p.payload_len, "clear"))
            continue
        control = _tcp_flags(p.flags)
        if control and not p.payload:
            out.append(Event(p.time, p.src, p.dst, f"TCP {control} :{p.dport}", 0, "control"))
        elif p.payload and (p.src, p.sport, p.dst, p.dport) not in tls_flows:
            first = p.payload.split(b"\r\n", 1)[0][:48].decode("latin-1")
            out.append(Event(p.time, p.src, p.dst, f"TCP data: {first}", p.payload_len, "clear"))
        # pure ACKs carry nothing an observer needs here; TLS payload is drawn record by record
    out += _record_events(obs, notes)
    out.sort(key=lambda ev: ev.time)        # stable: records of one packet keep their order
    return out


def infer_addresses(obs: Observation) -> dict[str, str]:
    """The lanes' addresses when the lab's are not given: read from the capture."""
    found: dict[str, str] = {}
    query = next((d for d in obs.dns if not d.response), None)
    if query:
        found["client"], found["dns"] = query.src, query.dst
    tcp = next((f for f in obs.flows if f.proto == "tcp"), None)
    if tcp:
        found.setdefault("client", tcp.client)
        found["server"] = tcp.server
    if "client" in found:
        found["wire"] = found["client"].rsplit(".", 1)[0] + ".254"   # the lab's convention: .254
    return found


# -- SVG: the sequence diagram ------------------------------------------------------------

LANE_X = {"client": 150, "wire": 470, "server": 790, "dns": 1010}
SEQ_WIDTH = 1090
ROW = 30
TOP = 96

def _marker(kind: str, size: int, path: str) -> str:
    return (f'<marker id="head-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="{size}" '
            f'markerHeight="{size}" orient="auto-start-reverse">{path}</marker>')


_DEFS = ("<defs>"
         + _marker("enc", 8, '<path d="M0,0 L10,5 L0,10 z" fill="#1d3f73"/>')
         + _marker("clear", 8, '<path d="M0,0 L10,5 L0,10 z" fill="none" stroke="#b03a00" stroke-width="1.6"/>')
         + _marker("control", 7, '<path d="M0,1 L9,5 L0,9" fill="none" stroke="#666" stroke-width="1.4"/>')
         + "</defs>")


def _lock(x: float, y: float) -> str:
    """A small padlock: the encrypted mark that survives greyscale and has no font dependency."""
    return (f'<g class="lock" transform="translate({x:.1f},{y:.1f})"><path d="M1.5,4 V2.5 a2.5,2.5 0 0 1 5,0 V4" '
            f'fill="none" stroke="#1d3f73" stroke-width="1.3"/><rect x="0" y="4" width="8" height="6" rx="1" '
            f'fill="#1d3f73"/></g>')


def _lane(addresses: dict[str, str], ip: str) -> str:
    for lane in LANES:
        if addresses.get(lane) == ip:
            return lane
    return "wire"      # an address outside the lab's four can only have been the wire's doing


def sequence_svg(result, addresses: dict[str, str], limit: int = MAX_EVENTS) -> str:
    """The exchange as the wire saw it: four lanes, one arrow per packet or TLS record."""
    evs = events(result)
    shown = evs[:limit]
    height = TOP + ROW * (len(shown) + 1) + (28 if len(evs) > limit else 8)
    parts = [f'<svg class="seq" viewBox="0 0 {SEQ_WIDTH} {height}" '
             f'width="{SEQ_WIDTH}" height="{height}" role="img" '
             f'aria-label="sequence diagram of {e(result.name)}: {len(evs)} events">', _DEFS,
             f'<title>{e(result.name)}: the exchange as the wire saw it</title>']
    for lane in LANES:
        x = LANE_X[lane]
        addr = addresses.get(lane, "?")
        wire = lane == "wire"
        parts.append(f'<g class="lane" data-lane="{lane}">'
                     f'<rect x="{x - 70}" y="8" width="140" height="44" rx="4" fill="{"#eee" if wire else "#fff"}" '
                     f'stroke="#333" stroke-width="{2 if wire else 1}"/>'
                     f'<text x="{x}" y="27" text-anchor="middle" class="lane-name">{lane}</text>'
                     f'<text x="{x}" y="44" text-anchor="middle" class="lane-addr">{e(addr)}</text>'
                     f'<line x1="{x}" y1="52" x2="{x}" y2="{height - 4}" stroke="#555" '
                     f'stroke-width="{2.5 if wire else 1}" stroke-dasharray="{"none" if wire else "3 4"}"/>')
        if wire:
            parts.append(f'<text x="{x}" y="66" text-anchor="middle" class="small">● = captured here</text>')
        parts.append("</g>")
    parts.append(f'<text x="8" y="{TOP - 14}" class="small">time (ms)</text>')
    for i, ev in enumerate(shown):
        y = TOP + ROW * i + 12
        a, b = LANE_X[_lane(addresses, ev.src)], LANE_X[_lane(addresses, ev.dst)]
        if a == b:                       # e.g. the wire answering as itself: a short stub
            b = a + 60
        dash = {"enc": "none", "clear": "7 4", "control": "2 3"}[ev.kind]
        width = {"enc": 2.6, "clear": 2, "control": 1.3}[ev.kind]
        colour = {"enc": "#1d3f73", "clear": "#b03a00", "control": "#666"}[ev.kind]
        size = f"{ev.size} B"
        label = f"{ev.label} · {size}" + (f" → {ev.note}" if ev.note else "")
        mid = (a + b) / 2
        parts.append(f'<g class="arrow {ev.kind}" data-kind="{ev.kind}" data-size="{ev.size}">'
                     f'<title>{e(ev.src)} → {e(ev.dst)}: {e(label)} at {ev.time * 1000:.3f} ms</title>'
                     f'<text x="8" y="{y + 4}" class="time">{ev.time * 1000:.1f}</text>'
                     f'<line x1="{a}" y1="{y}" x2="{b}" y2="{y}" stroke="{colour}" stroke-width="{width}" '
                     f'stroke-dasharray="{dash}" marker-end="url(#head-{ev.kind})"/>')
        wx = LANE_X["wire"]
        if min(a, b) < wx < max(a, b):
            parts.append(f'<circle cx="{wx}" cy="{y}" r="3.2" fill="#000"/>')
        wide = abs(b - a) > 200
        text_x, anchor = (mid, "middle") if wide else (max(a, b) + 10, "start")
        if ev.kind == "enc":
            # The padlock sits at the arrow's tail, clear of the head and of the (centred) label.
            parts.append(_lock(a + 8 if a < b else a - 16, y - 14))
        parts.append(f'<text x="{text_x:.1f}" y="{y - 5}" text-anchor="{anchor}" class="label {ev.kind}">'
                     f'{e(label)}</text></g>')
    if len(evs) > limit:
        y = TOP + ROW * len(shown) + 14
        parts.append(f'<text x="{LANE_X["client"] - 70}" y="{y}" class="more">… {len(evs) - limit} more '
                     f'events not drawn (first {limit} of {len(evs)}); the pcap beside this page has them all</text>')
    parts.append("</svg>")
    return "".join(parts)


LEGEND = ('<div class="legend" aria-label="legend">'
          '<svg width="640" height="22" viewBox="0 0 640 22" role="img" aria-label="legend">'
          '<line x1="4" y1="11" x2="44" y2="11" stroke="#1d3f73" stroke-width="2.6"/>'
          + _lock(50, 4) + '<text x="64" y="15" class="small">encrypted TLS record (solid)</text>'
          '<line x1="250" y1="11" x2="290" y2="11" stroke="#b03a00" stroke-width="2" stroke-dasharray="7 4"/>'
          '<text x="296" y="15" class="small">clear text (dashed)</text>'
          '<line x1="440" y1="11" x2="480" y2="11" stroke="#666" stroke-width="1.3" stroke-dasharray="2 3"/>'
          '<text x="486" y="15" class="small">TCP control (dotted)</text></svg>'
          '<p class="small">Arrows in capture order, evenly spaced (times at left); sizes are TLS record lengths '
          '(ciphertext) or UDP/TCP payload bytes. Pure ACKs are not drawn. "→ X" after an encrypted record is what it '
          'carried, from the lab\'s key log: an observer sees only its type and size.</p></div>')


# -- SVG: traffic analysis ------------------------------------------------------------------

def _nice_step(top: float) -> float:
    raw = top / 5
    mag = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def traffic_svg(data: dict) -> str:
    """Encrypted bytes per document, without and with padding: grouped bars on labelled axes."""
    plain = data.get("without_padding", {})
    padded = data.get("with_padding", {})
    docs = sorted(set(plain.get("profiles", {})) | set(padded.get("profiles", {})), key=lambda d: int(d))
    series = [("without padding", plain.get("profiles", {}), "solid"),
              ("padded to 32 KiB", padded.get("profiles", {}), "hatched")]
    kib = [v / 1024 for _, p, _ in series for v in p.values()] or [1]
    step = _nice_step(max(kib) or 1)
    top = step * (int(max(kib) / step) + 1)
    w, h, left, bottom, right, up = 760, 380, 80, 60, 20, 70
    pw, ph = w - left - right, h - bottom - up
    group = pw / max(1, len(docs))
    bar = group * 0.35
    out = [f'<svg class="chart traffic" viewBox="0 0 {w} {h}" width="{w}" '
           f'height="{h}" role="img" aria-label="encrypted bytes per document with and without padding">',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="#b03a00" stroke-width="2.4"/></pattern></defs>',
           f'<text x="{w / 2}" y="18" text-anchor="middle" class="chart-title">Server application data per fetch, '
           f'by document</text>']
    ticks = int(round(top / step))
    for i in range(ticks + 1):
        v = step * i
        y = up + ph - ph * v / top
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>')
    out.append(f'<text transform="translate(18,{up + ph / 2}) rotate(-90)" text-anchor="middle" class="axis-label">'
               f'encrypted bytes (KiB)</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 12}" text-anchor="middle" class="axis-label">'
               f'document (the page fetched)</text>')
    for i, doc in enumerate(docs):
        gx = left + group * i + group / 2
        for j, (name, profile, style) in enumerate(series):
            v = profile.get(doc, 0) / 1024
            bh = ph * v / top
            x = gx - bar + j * bar
            fill = 'fill="#1d3f73"' if style == "solid" else 'fill="url(#hatch)" stroke="#b03a00" stroke-width="1.2"'
            out.append(f'<rect class="bar {style}" x="{x:.1f}" y="{up + ph - bh:.1f}" width="{bar - 2:.1f}" '
                       f'height="{bh:.1f}" {fill}><title>doc {e(doc)}, {e(name)}: {profile.get(doc, 0)} B</title>'
                       '</rect>')
        out.append(f'<text x="{gx:.1f}" y="{up + ph + 18}" text-anchor="middle" class="tick">doc {e(doc)}</text>')
    out.append(f'<line x1="{left}" y1="{up}" x2="{left}" y2="{up + ph}" stroke="#000"/>'
               f'<line x1="{left}" y1="{up + ph}" x2="{left + pw}" y2="{up + ph}" stroke="#000"/>')
    lx = left + 10
    for j, (name, _, style) in enumerate(series):
        acc = (plain if j == 0 else padded)
        fill = 'fill="#1d3f73"' if style == "solid" else 'fill="url(#hatch)" stroke="#b03a00"'
        text = f"{name} ({style}): attacker right {acc.get('correct', 0)}/{acc.get('trials', 0)} " \
               f"= {100 * acc.get('accuracy', 0):.0f} %"
        out.append(f'<rect x="{lx}" y="{26 + j * 16}" width="14" height="12" {fill}/>'
                   f'<text x="{lx + 20}" y="{37 + j * 16}" class="small">{e(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def accuracy_svg(data: dict) -> str:
    """The attacker's accuracy with and without padding, against chance (1 in N)."""
    n = data.get("documents") or 8
    rows = [("without padding", data.get("without_padding", {}), "solid"),
            ("padded to 32 KiB", data.get("with_padding", {}), "hatched")]
    w, h, left, right = 760, 170, 150, 60
    pw = w - left - right
    out = [f'<svg class="chart accuracy" viewBox="0 0 {w} {h}" width="{w}" '
           f'height="{h}" role="img" aria-label="attacker accuracy with and without padding">',
           f'<text x="{w / 2}" y="16" text-anchor="middle" class="chart-title">Attacker accuracy '
           f'(guessing the document from sizes alone)</text>']
    for pct in range(0, 101, 20):
        x = left + pw * pct / 100
        out.append(f'<line x1="{x:.1f}" y1="46" x2="{x:.1f}" y2="116" stroke="#ddd"/>'
                   f'<text x="{x:.1f}" y="132" text-anchor="middle" class="tick">{pct}</text>')
    for i, (name, r, style) in enumerate(rows):
        y = 52 + i * 32
        acc = r.get("accuracy", 0)
        fill = 'fill="#1d3f73"' if style == "solid" else 'fill="url(#hatch)" stroke="#b03a00" stroke-width="1.2"'
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" class="small">{e(name)}</text>'
                   f'<rect class="bar {style}" x="{left}" y="{y}" width="{pw * acc:.1f}" height="22" {fill}/>'
                   f'<text x="{left + pw * acc + 6:.1f}" y="{y + 15}" class="small">{100 * acc:.0f} %</text>')
    cx = left + pw / n
    out.append(f'<line x1="{cx:.1f}" y1="40" x2="{cx:.1f}" y2="118" stroke="#000" stroke-width="1.5" '
               f'stroke-dasharray="5 3"/><text x="{cx + 4:.1f}" y="40" class="small">chance 1/{n} '
               f'= {100 / n:.1f} %</text>'
               f'<line x1="{left}" y1="116" x2="{left + pw}" y2="116" stroke="#000"/>'
               f'<text x="{left + pw / 2}" y="156" text-anchor="middle" class="axis-label">'
               f'guessed right (% of trials)</text></svg>')
    return "".join(out)


# -- HTML sections ----------------------------------------------------------------------------

def _pre_lines(lines: list[str]) -> str:
    return "<pre>" + "\n".join(e(line) for line in lines) + "</pre>"


def leak_table(lines: list[str]) -> str:
    """The terminal's `what still leaks` lines as a two-column table (key, value)."""
    rows = []
    for line in lines:
        key, _, value = line.partition(" ")
        if line.startswith(" ") or not key:
            rows.append(("", line.strip()))
        else:
            rows.append((key, value.strip()))
    body = "".join(f"<tr><th scope=\"row\">{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    return f'<table class="leaks"><tbody>{body}</tbody></table>'


def panels_html(left_title: str, left: str, right_title: str, right: str) -> str:
    return (f'<div class="panels"><div class="panel"><h4>{e(left_title)}</h4>{left}</div>'
            f'<div class="panel"><h4>{e(right_title)}</h4>{right}</div></div>')


def checks_html(checks) -> str:
    items = "".join(
        f'<li class="{"pass" if c.passed else "fail"}"><span class="mark">{"✔ PASS" if c.passed else "✘ FAIL"}'
        f'</span> <strong>{e(c.name)}</strong> — {e(c.evidence)}</li>' for c in checks)
    return f'<h3>Verdicts</h3><ul class="checks">{items}</ul>'


def _verdict(result) -> str:
    ok = result.passed
    return (f'<p class="verdict {"pass" if ok else "fail"}">verdict: '
            f'{"✔ all checks passed" if ok else "✘ SOME CHECKS FAILED"} ({result.seconds:.2f} s)</p>')


def _secret_on_wire(result) -> bool:
    secret = getattr(result, "secret", "")
    return bool(secret) and bool(result.observation.find(secret.encode()))


def scenario_body(result) -> str:
    """A plain exchange (plaintext, tls, tls12): the terminal view's panels, decrypted, verdicts."""
    obs = result.observation
    on_wire = _secret_on_wire(result)
    if on_wire:
        secret_line = (f'<p>secret this run: <code class="secret">{e(result.secret)}</code> — '
                       f'<strong>readable on the wire</strong> (see the excerpt below)</p>')
    else:
        secret_line = ('<p>secret this run: <em>not shown</em> — it never crossed the wire in clear, and this '
                       'page shows what the wire saw; the key log beside this page decrypts it in Wireshark.</p>')
    left_title = "on the wire (ciphertext)" if obs.tls else "on the wire (clear text)"
    out = [secret_line,
           panels_html(left_title, _pre_lines(render.wire_lines(result)), "what still leaks",
                       leak_table(render.leak_lines(result)))]
    if result.decrypted is not None:
        lines = [f"↑ {line}" for line in result.decrypted[C2S].decode("latin-1").split("\r\n") if line]
        status = result.decrypted["s2c"].split(b"\r\n", 1)[0].decode("latin-1")
        if status:
            lines.append(f"↓ {status}")
        out.append('<h3>Decrypted with the lab\'s key log</h3><p class="small">An observer on the wire has no key '
                   'log; the lab does. What the records marked → carried (the secret is masked):</p>'
                   + _pre_lines(lines))
    return "".join(out)


def attack_body(result) -> str:
    """An attack: its two panels and notes, plus the traffic-analysis plot or forward-secrecy steps."""
    (lt, left), (rt, right) = result.left, result.right
    out = [panels_html(lt, _pre_lines(left), rt, _pre_lines(right))]
    if result.notes:
        out.append(_pre_lines(result.notes))
    if result.name == "traffic-analysis":
        out.append('<h3>Record sizes per document</h3><div class="chart-box">' + traffic_svg(result.data)
                   + accuracy_svg(result.data) + "</div>")
    if result.name == "forward-secrecy":
        out.append(forward_secrecy_html(result.data))
    return "".join(out)


def _short(value: str, n: int = 96) -> str:
    return value if len(value) <= n else value[:n] + f"… ({len(value)} chars)"


def forward_secrecy_html(data: dict) -> str:
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
                       + _pre_lines(lines))
    return "".join(out)


def verify_body(result) -> str:
    """The verification matrix: expected beside actual, per case and client."""
    note = result.external_note() if hasattr(result, "external_note") else ""
    rows = []
    for r in result.cases:
        for o in r.outcomes:
            rows.append(f"<tr><td>{e(r.case.name if o.client == 'safe' else '')}</td><td>{e(o.client)}</td>"
                        f"<td>{e(o.expected.outcome)}</td><td>{e(o.actual)}</td><td>{e(o.error or '-')}</td>"
                        f"<td>{'✔' if o.passed else '✘ ' + e(o.why)}</td></tr>")
    return ('<table class="grid"><thead><tr><th>case</th><th>client</th><th>expected</th><th>actual</th>'
            '<th>error</th><th></th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
            + "<h4>What the wire saw (the safe client's connection)</h4>"
            + _pre_lines([f"{r.case.name:<17} {'; '.join(r.wire)}" for r in result.cases])
            + (f'<p class="note">{e(note)}</p>' if note else ""))


def files_html(name: str, files: dict[str, str]) -> str:
    if not files:
        return ""
    links = " · ".join(f'<a href="{e(path)}">{e(path)}</a> ({e(what)})' for what, path in files.items())
    cmd = f"wireshark {files['capture']}" if "capture" in files else ""
    if "key log" in files and cmd:
        cmd = f"wireshark -o tls.keylog_file:{files['key log']} {files['capture']}"
    return (f'<p class="files">Beside this page: {links}. Open in Wireshark: <code>{e(cmd)}</code></p>'
            if cmd else f'<p class="files">Beside this page: {links}</p>')


def section(result, addresses: dict[str, str] | None = None, files: dict[str, str] | None = None) -> str:
    """One scenario: title, sequence diagram, panels, the plot or steps it has, verdicts, files."""
    addresses = {**infer_addresses(result.observation), **(addresses or {})}
    if hasattr(result, "cases"):
        body = verify_body(result)
    elif hasattr(result, "left"):
        body = attack_body(result)
    else:
        body = scenario_body(result)
    html_ = (f'<section class="scenario" id="s-{e(result.name)}" data-scenario="{e(result.name)}">'
             f'<h2>{e(result.name)} — {e(result.title)}</h2>{_verdict(result)}'
             f'<h3>The exchange as the wire saw it</h3>{LEGEND}<div class="seq-box">'
             f'{sequence_svg(result, addresses)}</div>{body}{checks_html(result.checks)}'
             f'{files_html(result.name, files or {})}</section>')
    secret = getattr(result, "secret", "")
    if secret and not _secret_on_wire(result):
        # The page is the wire's view: a secret that never crossed in clear is not printed anywhere.
        html_ = html_.replace(e(secret), "s3cr3t-•••• (masked)")
    return html_


CSS = """
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #111; }
body { max-width: 1180px; margin: 0 auto; padding: 16px 24px; line-height: 1.4; background: #fff; }
h1 { font-size: 1.6em; margin: 0.2em 0; }
h2 { border-bottom: 2px solid #333; padding-bottom: 4px; margin-top: 1.6em; }
h3 { margin: 1.1em 0 0.4em; } h4 { margin: 0.2em 0 0.4em; font-size: 0.95em; }
pre, code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #f6f6f6; border: 1px solid #ccc; padding: 8px; overflow-x: auto; white-space: pre-wrap;
      word-break: break-all; margin: 0; }
.panels { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.panel { border: 1px solid #888; padding: 8px; border-radius: 4px; min-width: 0; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 3px 8px; text-align: left; vertical-align: top; }
table.leaks th { font-family: monospace; white-space: nowrap; }
table.leaks td { font-family: monospace; word-break: break-all; }
table.grid { width: 100%; } table.grid th, table.grid td { border: 1px solid #bbb; }
.seq-box, .chart-box { overflow-x: auto; } svg { max-width: 100%; height: auto; display: block; }
svg text { font-size: 12px; }
.lane-name { font-weight: bold; font-size: 14px; }
.lane-addr { font-family: monospace; }
.label { paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
.label.enc { fill: #1d3f73; font-weight: 600; }
.label.clear { fill: #8a2d00; }
.label.control { fill: #555; font-size: 11px; }
.time { font-family: monospace; fill: #444; font-size: 11px; } .small { font-size: 12px; color: #333; }
.more { font-style: italic; } .chart-title { font-weight: bold; font-size: 14px; } .axis-label { font-size: 13px; }
.tick { font-size: 11px; }
ul.checks { list-style: none; padding-left: 0; } ul.checks li { margin: 3px 0; }
.mark { font-family: monospace; font-weight: bold; } li.fail .mark, .verdict.fail { text-decoration: underline; }
.verdict { font-weight: bold; } ol.steps li { margin-bottom: 6px; } ol.steps code { word-break: break-all; }
.files { border-top: 1px solid #ccc; padding-top: 6px; } nav ul { columns: 3; }
@media (max-width: 900px) { .panels { grid-template-columns: 1fr; } }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; } a { color: inherit; }
  section.scenario { break-before: page; } section.scenario:first-of-type { break-before: auto; }
  svg, pre, table, .panel { break-inside: avoid; } .seq-box, .chart-box { overflow: visible; }
}
"""


def page(results, addresses: dict[str, str] | None = None, files: dict[str, dict[str, str]] | None = None,
         title: str = "TLS wire lab report") -> str:
    """The whole self-contained page."""
    files = files or {}
    nav = "".join(f'<li><a href="#s-{e(r.name)}">{e(r.name)}</a> — {"✔ pass" if r.passed else "✘ FAIL"}</li>'
                  for r in results)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    sections = "".join(section(r, addresses, files.get(r.name)) for r in results)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(title)}</title><style>{CSS}</style></head><body>'
            f'<h1>{e(title)}</h1><p class="small">Generated {e(stamp)} by <code>labctl report</code>. '
            f'Every figure comes from the packets captured on the wire in this run. This page loads nothing '
            f'from the network.</p><nav><ul>{nav}</ul></nav>{sections}</body></html>')


# -- writing ------------------------------------------------------------------------------------

def check_out_dir(out_dir: Path, names: Iterable[str] = ()) -> Path:
    """Fail before anything runs if the folder cannot be made or written (tested for real, see
    capture.check_output_dir), or if one of NAMES in it (index.html, NAME.pcap, NAME.keylog) is
    there and is not a regular file."""
    return capture.check_output_dir(out_dir, "--out", ["index.html", *names])


def report_files(names: Iterable[str]) -> list[str]:
    """The files a report of these scenarios may write beside index.html."""
    return [f"{name}.{ext}" for name in names for ext in ("pcap", "keylog")]


def write_report(results, out_dir: Path, addresses: dict[str, str] | None = None) -> Path:
    """Write OUT/index.html and, beside it, NAME.pcap and NAME.keylog; return the page's path.

    Every file is mode 0600 (captures, key logs, and the page, which may quote a
    secret read off the wire), written under a temporary name and renamed into
    place only once all of them are written: an interrupted or failed report
    leaves no partial file, and no page linking to a capture that is not there.
    """
    out_dir = check_out_dir(Path(out_dir), report_files(r.name for r in results))
    files: dict[str, dict[str, str]] = {}
    written: list[tuple[Path, Path]] = []           # (temporary, final)
    index = out_dir / "index.html"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)

        def put(name: str, data: bytes) -> None:
            dest = out_dir / name
            written.append((write_partial(data, dest), dest))

        for r in results:
            links = {}
            if r.pcap:
                put(f"{r.name}.pcap", r.pcap)
                links["capture"] = f"{r.name}.pcap"
            if getattr(r, "keylog", ""):
                put(f"{r.name}.keylog", r.keylog.encode())
                links["key log"] = f"{r.name}.keylog"
            files[r.name] = links
        put("index.html", page(results, addresses, files).encode("utf-8"))
        while written:
            tmp, dest = written[0]
            install(tmp, dest, PRIVATE, ReportError)  # the page last: it links to the others
            written.pop(0)
    except OSError as exc:
        raise ReportError(f"cannot write the report in {shown(out_dir)}: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in written:                       # failed or interrupted: no partial file stays
            tmp.unlink(missing_ok=True)
    return index
