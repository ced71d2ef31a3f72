"""`labctl report`: scenario results as one self-contained HTML page.

Pure rendering (results in, HTML strings out) plus write_report(), which
writes index.html with each scenario's pcap and key log beside it, and
index.json: the sequence of what the wire saw (labctl.sequence), the same
events the page draws, for scripts and for checking against tshark. The page
fetches nothing: CSS and SVG are inline, links point only at the files next
to it. Every string that came from the lab or the wire is escaped.

Each result brings its own section body (labctl.verdict.Result.html), built
from the blocks here; nothing here names a scenario or knows a result type.

Styles never rely on colour alone (greyscale printing): encrypted records are
solid lines with a padlock, clear text dashed, TCP control dotted; the
padded bars are hatched.
"""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from . import __version__, capture
from .errors import LabError
from .files import PRIVATE, install, shown, write_partial
from .interrupts import shielded
from .sequence import WIRE, Event, Lanes, events, infer_lanes
from .tls.pcapfile import CaptureFormatError
from .tls.pcapng import to_pcapng

if TYPE_CHECKING:
    from .verdict import Check, Result

MAX_EVENTS = 150         # arrows per diagram (sslstrip's two browsers make 118); index.json has every event


class ReportError(LabError):
    """The report could not be written."""


def e(value: object) -> str:
    """Escape for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def lanes_of(result: Result, lanes: Lanes | None = None) -> Lanes:
    """The lanes to draw RESULT on: the lab's as the run recorded them (Lanes.of), else read off the capture."""
    return result.lanes or lanes or infer_lanes(result.observation)


def sequence(result: Result, lanes: Lanes | None = None) -> list[Event]:
    """RESULT's events (labctl.sequence.events), on its lanes."""
    return events(result.observation, lanes_of(result, lanes), result.record_notes())


# -- SVG: the sequence diagram ------------------------------------------------------------

LANE_X = {"client": 150, "wire": 470, "server": 790, "dns": 1010}
# With the proxy's lane (drawn only where a packet went to or from it): between the wire and the server.
PROXY_LANE_X = {"client": 150, "wire": 470, "proxy": 790, "server": 1060, "dns": 1250}
SEQ_WIDTH = 1090
ROW = 30


def lane_positions(evs: list[Event]) -> tuple[dict[str, int], int]:
    """Each drawn lane's x, and the diagram's width: the proxy's lane only when an event touches it."""
    if any("proxy" in (ev.from_lane, ev.to_lane) for ev in evs):
        return PROXY_LANE_X, PROXY_LANE_X["dns"] + 80
    return LANE_X, SEQ_WIDTH
TOP = 96


def _marker(uid: str, kind: str, size: int, path: str) -> str:
    return (f'<marker id="head-{kind}-{uid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="{size}" '
            f'markerHeight="{size}" orient="auto-start-reverse">{path}</marker>')


def _defs(uid: str) -> str:
    """Each diagram's own arrowheads: an id shared between SVGs resolves to the first one, and a folded
    (display: none) diagram would take every later diagram's arrowheads with it."""
    return ("<defs>"
            + _marker(uid, "enc", 8, '<path d="M0,0 L10,5 L0,10 z" fill="#1d3f73"/>')
            + _marker(uid, "clear", 8, '<path d="M0,0 L10,5 L0,10 z" fill="none" stroke="#b03a00" '
                                       'stroke-width="1.6"/>')
            + _marker(uid, "control", 7, '<path d="M0,1 L9,5 L0,9" fill="none" stroke="#666" stroke-width="1.4"/>')
            + "</defs>")


def _lock(x: float, y: float) -> str:
    """A small padlock: the encrypted mark that survives greyscale and has no font dependency."""
    return (f'<g class="lock" transform="translate({x:.1f},{y:.1f})"><path d="M1.5,4 V2.5 a2.5,2.5 0 0 1 5,0 V4" '
            f'fill="none" stroke="#1d3f73" stroke-width="1.3"/><rect x="0" y="4" width="8" height="6" rx="1" '
            f'fill="#1d3f73"/></g>')


def sequence_svg(name: str, evs: list[Event], lanes: Lanes, limit: int = MAX_EVENTS, caption: str = "",
                 uid: str = "0") -> str:
    """The exchange as the wire saw it: four lanes, one arrow per packet or TLS record, each from the
    lane that sent it to the lane it reached (labctl.sequence), at most LIMIT of them. UID tells this
    diagram's arrowheads from others' on the same page (with NAME, which is unique per page)."""
    uid = re.sub(r"[^A-Za-z0-9_-]", "-", f"{name}-{uid}")
    addresses = lanes.addresses
    shown = evs[:limit]
    lane_x, width = lane_positions(evs)
    height = TOP + ROW * (len(shown) + 1) + (28 if len(evs) > limit else 8)
    what = f"{name}{': ' + caption if caption else ''}"
    parts = [f'<svg class="seq" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" '
             f'aria-label="sequence diagram of {e(what)}: {len(evs)} events">', _defs(uid),
             f'<title>{e(what)}: the exchange as the wire saw it</title>']
    for lane in lane_x:
        x = lane_x[lane]
        addr = addresses.get(lane, "?")
        wire = lane == WIRE
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
        a, b = lane_x[ev.from_lane], lane_x[ev.to_lane]
        w = lane_x[WIRE]
        if a == b:                       # e.g. the wire talking to itself: a short stub
            b = a + 60
        # Forwarded between two lanes on the same side of the wire (the proxy and the server): the
        # packet went through the wire all the same, so its arrow turns there.
        turns = ev.forwarded and WIRE not in (ev.from_lane, ev.to_lane) and (a - w) * (b - w) > 0
        dash = {"enc": "none", "clear": "7 4", "control": "2 3"}[ev.kind]
        stroke = {"enc": 2.6, "clear": 2, "control": 1.3}[ev.kind]
        colour = {"enc": "#1d3f73", "clear": "#b03a00", "control": "#666"}[ev.kind]
        label = f"{ev.label} · {ev.size} B" + (f" → {ev.note}" if ev.note else "")
        mid = (a + b) / 2
        parts.append(f'<g class="arrow {ev.kind}" data-kind="{ev.kind}" data-size="{ev.size}" '
                     f'data-frame="{ev.frame}" data-from="{ev.from_lane}" data-to="{ev.to_lane}">'
                     f'<title>frame {ev.frame}, {e(ev.src)} → {e(ev.dst)}: {e(label)} at {ev.time * 1000:.3f} ms'
                     f'</title><text x="8" y="{y + 4}" class="time">{ev.time * 1000:.1f}</text>'
                     + (f'<path d="M{a},{y - 3} H{w} V{y + 3} H{b}" fill="none" stroke="{colour}" '
                        f'stroke-width="{stroke}" stroke-dasharray="{dash}" marker-end="url(#head-{ev.kind}-{uid})"/>'
                        if turns else
                        f'<line x1="{a}" y1="{y}" x2="{b}" y2="{y}" stroke="{colour}" stroke-width="{stroke}" '
                        f'stroke-dasharray="{dash}" marker-end="url(#head-{ev.kind}-{uid})"/>'))
        parts.append(f'<circle cx="{w}" cy="{y}" r="3.2" fill="#000"/>')   # every packet: at the wire
        wide = abs(b - a) > 200
        text_x, anchor = (mid, "middle") if wide else (max(a, b) + 10, "start")
        if ev.kind == "enc":
            # The padlock sits under the arrow's tail, clear of the head and of the label above the line
            # (a turned arrow sets off toward the wire).
            heading = (w - a) if turns else (b - a)
            parts.append(_lock(a + 8 if heading > 0 else a - 16, y + 4))
        # A turned arrow's label rides above its upper line, not on it.
        parts.append(f'<text x="{text_x:.1f}" y="{y - (9 if turns else 5)}" text-anchor="{anchor}" '
                     f'class="label {ev.kind}">{e(label)}</text></g>')
    if len(evs) > limit:
        y = TOP + ROW * len(shown) + 14
        parts.append(f'<text x="{lane_x["client"] - 70}" y="{y}" class="more">… {len(evs) - limit} more '
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
          '<p class="small">Arrows in capture order, evenly spaced (times at left); each goes from the lane that '
          'sent the packet to the lane it reached: what the wire forwarded crosses it, what the wire sent itself '
          'starts at the wire, what it intercepted ends there; between two lanes on the same side of the wire '
          '(the proxy and the server) an arrow runs to the wire and turns there, since the packet went through '
          'it. Sizes are TLS record lengths (ciphertext) or UDP/TCP payload bytes. Pure ACKs are not drawn. "→ X" after an encrypted record is what it carried, from the '
          'lab\'s key log: an observer sees only its type and size.</p></div>')


def diagrams_html(result: Result, diagrams: list[tuple[str, list[Event]]], lanes: Lanes) -> str:
    """The result's sequence diagrams (Result.diagrams): one, or one per group of events, folded."""
    if len(diagrams) == 1 and not diagrams[0][0]:
        return f'<div class="seq-box">{sequence_svg(result.name, diagrams[0][1], lanes)}</div>'
    out = []
    for i, (caption, evs) in enumerate(diagrams):
        out.append(f'<details class="seq"{" open" if i == 0 else ""}><summary>{e(caption)} '
                   f'({len(evs)} events)</summary><div class="seq-box">'
                   f'{sequence_svg(result.name, evs, lanes, caption=caption, uid=str(i))}</div></details>')
    return "".join(out)


# -- HTML sections ----------------------------------------------------------------------------

def pre_lines(lines: list[str]) -> str:
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


def checks_html(checks: list[Check]) -> str:
    items = "".join(
        f'<li class="{"pass" if c.passed else "fail"}"><span class="mark">{"✔ PASS" if c.passed else "✘ FAIL"}'
        f'</span> <strong>{e(c.name)}</strong> — {e(c.evidence)}</li>' for c in checks)
    return f'<h3>Verdicts</h3><ul class="checks">{items}</ul>'


def _verdict(result: Result) -> str:
    ok = result.passed
    return (f'<p class="verdict {"pass" if ok else "fail"}">verdict: '
            f'{"✔ all checks passed" if ok else "✘ SOME CHECKS FAILED"} ({result.seconds:.2f} s)</p>')


CAPTURE_WITH_KEYS = "capture with the key log embedded"     # files' name for NAME.pcapng


def files_html(name: str, files: dict[str, str]) -> str:
    if not files:
        return ""
    links = " · ".join(f'<a href="{e(path)}">{e(path)}</a> ({e(what)})' for what, path in files.items())
    cmd = f"wireshark {files['capture']}" if "capture" in files else ""
    if CAPTURE_WITH_KEYS in files and cmd:
        # The pcapng's Decryption Secrets Block holds the key log: no option needed to decrypt it.
        return (f'<p class="files">Beside this page: {links}. Open in Wireshark: <code>{e(cmd)}</code> '
                f'(what an observer sees) or <code>wireshark {e(files[CAPTURE_WITH_KEYS])}</code> '
                '(decrypted: the key log is inside the file)</p>')
    if "key log" in files and cmd:
        cmd = f"wireshark -o tls.keylog_file:{files['key log']} {files['capture']}"
    return (f'<p class="files">Beside this page: {links}. Open in Wireshark: <code>{e(cmd)}</code></p>'
            if cmd else f'<p class="files">Beside this page: {links}</p>')


def section(result: Result, lanes: Lanes | None = None, files: dict[str, str] | None = None,
            evs: list[Event] | None = None) -> str:
    """One scenario: title, sequence diagrams, the result's own body, verdicts, files.

    EVS are the result's events when already computed (write_report computes
    them once, for the page and index.json).
    """
    lanes = lanes_of(result, lanes)
    evs = sequence(result, lanes) if evs is None else evs
    html_ = (f'<section class="scenario" id="s-{e(result.name)}" data-scenario="{e(result.name)}">'
             f'<h2>{e(result.name)} — {e(result.title)}</h2>{_verdict(result)}'
             f'<h3>The exchange as the wire saw it</h3>{LEGEND}{diagrams_html(result, result.diagrams(evs), lanes)}'
             f'{result.html()}{checks_html(result.checks)}{files_html(result.name, files or {})}</section>')
    for secret in result.hidden():
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
      overflow-wrap: anywhere; margin: 0; }
.panels { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.panel { border: 1px solid #888; padding: 8px; border-radius: 4px; min-width: 0; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 3px 8px; text-align: left; vertical-align: top; }
table.leaks th { font-family: monospace; white-space: nowrap; }
table.leaks td { font-family: monospace; overflow-wrap: anywhere; }
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
.verdict { font-weight: bold; } ol.steps li { margin-bottom: 6px; } ol.steps code { overflow-wrap: anywhere; }
details.seq summary { cursor: pointer; font-weight: 600; margin: 4px 0; }
.files { border-top: 1px solid #ccc; padding-top: 6px; } nav ul { columns: 3; }
@media (max-width: 900px) { .panels { grid-template-columns: 1fr; } }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; } a { color: inherit; }
  section.scenario { break-before: page; } section.scenario:first-of-type { break-before: auto; }
  svg, pre, table, .panel { break-inside: avoid; } .seq-box, .chart-box { overflow: visible; }
}
"""


def page(results: list[Result], lanes: Lanes | None = None, files: dict[str, dict[str, str]] | None = None,
         title: str = "TLS wire lab report", evs: dict[str, list[Event]] | None = None) -> str:
    """The whole self-contained page (EVS: each result's events by name, when already computed)."""
    files = files or {}
    evs = evs or {}
    nav = "".join(f'<li><a href="#s-{e(r.name)}">{e(r.name)}</a> — {"✔ pass" if r.passed else "✘ FAIL"}</li>'
                  for r in results)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    sections = "".join(section(r, lanes, files.get(r.name), evs.get(r.name)) for r in results)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(title)}</title><style>{CSS}</style></head><body>'
            f'<h1>{e(title)}</h1><p class="small">Generated {e(stamp)} by <code>labctl report</code>. '
            f'Every figure comes from the packets captured on the wire in this run. This page loads nothing '
            f'from the network.</p><nav><ul>{nav}</ul></nav>{sections}</body></html>')


def index_json(results: list[Result], lanes: Lanes | None, evs: dict[str, list[Event]],
               files: dict[str, dict[str, str]]) -> str:
    """index.json: per scenario, its verdict, its files, every event of its capture, and its
    diagrams (each a caption and the frame numbers of the events it holds; the page draws the first
    MAX_EVENTS of each), so a script or a test can read what the page shows."""
    def diagrams(r: Result) -> list[dict[str, object]]:
        position = {id(ev): i for i, ev in enumerate(evs[r.name])}
        return [{"caption": caption, "events": [position[id(ev)] for ev in shown],
                 "drawn": min(len(shown), MAX_EVENTS)} for caption, shown in r.diagrams(evs[r.name])]

    doc = {"schema": "tlslab.report/1", "passed": all(r.passed for r in results), "scenarios": [
        {"scenario": r.name, "title": r.title, "passed": r.passed, "files": files.get(r.name, {}),
         "lanes": {"addresses": lanes_of(r, lanes).addresses, "wire_mac": lanes_of(r, lanes).wire_mac},
         "checks": [c.to_dict() for c in r.checks], "events": [ev.to_dict() for ev in evs[r.name]],
         "diagrams": diagrams(r)}
        for r in results]}
    text = json.dumps(doc, indent=1)
    for r in results:
        for secret in r.hidden():
            text = text.replace(secret, "s3cr3t-•••• (masked)")
    return text


# -- writing ------------------------------------------------------------------------------------

def check_out_dir(out_dir: Path, names: Iterable[str] = ()) -> Path:
    """Fail before anything runs if the folder cannot be made or written (tested for real, see
    capture.check_output_dir), or if one of NAMES in it (index.html, index.json, NAME.pcap,
    NAME.keylog, NAME.pcapng) is there and is not a regular file."""
    return capture.check_output_dir(out_dir, "--out", ["index.html", "index.json", *names])


def report_files(names: Iterable[str]) -> list[str]:
    """The files a report of these scenarios may write beside index.html."""
    return [f"{name}.{ext}" for name in names for ext in ("pcap", "keylog", "pcapng")]


def _with_keys(result: Result) -> bytes:
    """RESULT's capture as a pcapng with its key log in a Decryption Secrets Block (labctl.tls.pcapng).

    A function of its own, not a `try` inside write_report's: CPython 3.11
    leaves the NOP of a `try:` line nested in another try's body out of the
    exception table, so a signal landing on that line skipped write_report's
    cleanup (found by tests/unit/test_interrupted_writes.py).
    """
    try:
        return to_pcapng(result.pcap, result.keylog, application=f"labctl {__version__}",
                         name=f"the capture of {result.name}")
    except CaptureFormatError as exc:             # the wire's file, not the user's input: not exit 2
        raise ReportError(f"cannot write {result.name}.pcapng: {exc}") from None


def write_report(results: list[Result], out_dir: Path, lanes: Lanes | None = None,
                 owned: Iterable[str] = ()) -> Path:
    """Write OUT/index.html and, beside it, index.json, NAME.pcap, and where the scenario kept a key log
    NAME.keylog and NAME.pcapng (the capture with that key log in a Decryption Secrets Block, which
    Wireshark opens decrypted with no options: labctl.tls.pcapng); return the page's path.

    Every file is mode 0600 (captures, key logs, and the page, which may quote a
    secret read off the wire), written under a temporary name and renamed into
    place only once all of them are written: an interrupted or failed report
    leaves no partial file, and no page linking to a capture that is not there.
    OWNED names the files an earlier report may have left in the folder
    (report_files of every scenario): those this report does not write are
    removed once it is in place, so no stale capture sits beside the new page.
    """
    out_dir = check_out_dir(Path(out_dir), report_files(r.name for r in results))
    files: dict[str, dict[str, str]] = {}
    written: list[tuple[Path, Path]] = []           # (temporary, final)
    index = out_dir / "index.html"
    evs = {r.name: sequence(r, lanes) for r in results}          # computed once: the page and index.json
    try:
        out_dir.mkdir(parents=True, exist_ok=True)

        def put(name: str, data: bytes) -> None:
            dest = out_dir / name
            with shielded():                          # the name is recorded before a signal can land
                written.append((write_partial(data, dest), dest))

        for r in results:
            links = {}
            if r.pcap:
                put(f"{r.name}.pcap", r.pcap)
                links["capture"] = f"{r.name}.pcap"
            if r.keylog:
                put(f"{r.name}.keylog", r.keylog.encode())
                links["key log"] = f"{r.name}.keylog"
                if r.pcap:
                    put(f"{r.name}.pcapng", _with_keys(r))
                    links[CAPTURE_WITH_KEYS] = f"{r.name}.pcapng"
            files[r.name] = links
        put("index.json", index_json(results, lanes, evs, files).encode("utf-8"))
        put("index.html", page(results, lanes, files, evs=evs).encode("utf-8"))
        kept = {dest.name for _, dest in written}
        while written:
            tmp, dest = written[0]
            install(tmp, dest, PRIVATE, ReportError)  # the page last: it links to the others
            written.pop(0)
        for name in set(owned) - kept:
            stale = out_dir / name
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()                        # an earlier report's, not linked from this page
    except OSError as exc:
        raise ReportError(f"cannot write the report in {shown(out_dir)}: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in written:                       # failed or interrupted: no partial file stays
            tmp.unlink(missing_ok=True)
    return index
