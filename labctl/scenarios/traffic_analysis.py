"""traffic-analysis: an observer guesses which of 8 documents was fetched from sizes alone; padding brings it to chance.

Which page did they read? The sizes tell, unless they are padded.

What it demonstrates: TLS hides what a response says, not how long it is.
The server hosts 8 documents of different sizes. The attacker first visits
each once, as anyone can, and notes how many encrypted bytes come back.
Then, over 160 trials, the client fetches one document at random over TLS;
the attacker, holding only the capture (no keys), guesses which one from the
encrypted record sizes. Without padding it is right nearly every time. With
the padding defence (every response padded to one 32 KiB bucket), the sizes
are all the same and the guess is no better than chance, 1 in 8.

Both accuracies come from real captured runs; the attacker's classifier
uses nothing but the pcap, and its guesses are graded against the lab's own
record of which document each connection fetched.

What to look for in the capture (both phases, the padded one after): 2 x 168
TLS connections; in the first half the server's application_data bytes
differ from document to document, in the second they are all one size.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass

from .. import attack, capture, runner
from ..lab import Lab
from ..report import e
from ..tls.analyzer import S2C, Observation, analyze
from ..tls.constants import APPLICATION_DATA
from ..verdict import Check
from . import Options

NAME = "traffic-analysis"
TITLE = "Traffic analysis: record sizes reveal which document was fetched"
CHECKS = ("capture complete", "accuracy without padding >= 95 %", "accuracy with padding <= 1/N + 10 points")
DOCUMENTS = 8
TRIALS = 160          # >= 100; with padding, chance +10 points is then 3.8 standard deviations away


@dataclass
class TrafficResult(attack.AttackResult):
    """The attack's panels, and in the report the sizes per document and the accuracy, as charts."""

    def extra_html(self) -> str:
        return ('<h3>Record sizes per document</h3><div class="chart-box">' + traffic_svg(self.data)
                + accuracy_svg(self.data) + "</div>")


def fingerprint(obs: Observation, port: int) -> tuple[int, int]:
    """What the attacker measures per connection: server bytes of application data, and record count."""
    conn = next((t for t in obs.tls if t.flow.client_port == port), None)
    if conn is None:
        return (0, 0)
    records = [r for r in conn.records if r.direction == S2C and r.content_type == APPLICATION_DATA]
    return (sum(r.length for r in records), len(records))


def classify(profiles: dict[int, tuple[int, int]], seen: tuple[int, int], rng: random.Random) -> int:
    """Nearest profile by total size; ties (as padding makes them) broken at random."""
    distance = {doc: abs(p[0] - seen[0]) for doc, p in profiles.items()}
    best = min(distance.values())
    return rng.choice(sorted(doc for doc, d in distance.items() if d == best))


def one_round(lab: Lab, padded: bool, trials: int, rng: random.Random) -> dict:
    prefix = "/padded/doc/" if padded else "/doc/"
    truth = [rng.randrange(DOCUMENTS) for _ in range(trials)]
    runs = [[runner.SERVER_NAME, "--path", f"{prefix}{doc}"] for doc in range(DOCUMENTS)]
    runs += [[runner.SERVER_NAME, "--path", f"{prefix}{doc}"] for doc in truth]
    # ~170 connections and 4 MB in a few seconds: the default 8 MiB capture
    # buffer dropped packets on a loaded 2-core machine; 64 MiB did not.
    b = runner.batch(lab, f"{NAME}-{'padded' if padded else 'plain'}", runs, buffer_mib=64)
    failed = [r for r in b.reports if not r.get("ok")]
    ports = [int(r.get("local_port") or 0) for r in b.reports]       # 0: the fetch failed, no connection
    profiles = {doc: fingerprint(b.observation, ports[doc]) for doc in range(DOCUMENTS)}
    guesses = [classify(profiles, fingerprint(b.observation, port), rng) for port in ports[DOCUMENTS:]]
    right = sum(g == t for g, t in zip(guesses, truth))
    return {"padded": padded, "trials": trials, "correct": right, "accuracy": right / trials,
            "failed_fetches": len(failed), "profiles": {str(d): p[0] for d, p in profiles.items()},
            "fetched": dict(Counter(truth)), "stats": b.stats, "pcap": b.pcap, "observation": b.observation,
            "lanes": b.lanes}


def run(lab: Lab, options: Options = Options(), trials: int = TRIALS) -> TrafficResult:
    started = time.monotonic()
    rng = random.Random()            # a fresh seed each run: the result is not rehearsed
    plain = one_round(lab, False, trials, rng)
    padded = one_round(lab, True, trials, rng)
    chance = 1 / DOCUMENTS
    complete = plain["stats"].complete and padded["stats"].complete
    checks = [
        Check("capture complete", complete and not plain["failed_fetches"] and not padded["failed_fetches"],
              f"{plain['stats'].packets + padded['stats'].packets} packets, "
              f"{plain['stats'].dropped_by_kernel + padded['stats'].dropped_by_kernel} dropped by the kernel, "
              f"{plain['failed_fetches'] + padded['failed_fetches']} failed fetches"),
        Check("accuracy without padding >= 95 %", plain["accuracy"] >= 0.95,
              f"{plain['correct']}/{trials} guessed right from sizes alone"),
        Check("accuracy with padding <= 1/N + 10 points", padded["accuracy"] <= chance + 0.10,
              f"{padded['correct']}/{trials} right; chance is {chance:.1%}"),
    ]

    def panel(r: dict) -> list[str]:
        lines = [f"accuracy {r['correct']}/{trials} = {r['accuracy']:.0%}", "server bytes per document:"]
        lines += [f"  doc {d}: {size} B" for d, size in r["profiles"].items()]
        return lines

    strip = lambda r: {k: v for k, v in r.items() if k not in ("stats", "pcap", "observation", "lanes")}  # noqa: E731
    # The saved capture holds both phases, as the verdict counts both: one pcap, the padded phase after.
    pcap = capture.concatenate([plain["pcap"], padded["pcap"]])
    stats = capture.CaptureStats(f"{plain['stats'].name}+{padded['stats'].name}", "", len(pcap),
                                 plain["stats"].packets + padded["stats"].packets,
                                 plain["stats"].received_by_filter + padded["stats"].received_by_filter,
                                 plain["stats"].dropped_by_kernel + padded["stats"].dropped_by_kernel,
                                 complete, plain["stats"].killed or padded["stats"].killed)
    return TrafficResult(
        NAME, TITLE, checks, stats, analyze(pcap, name="the traffic-analysis capture"), pcap,
        seconds=time.monotonic() - started, lanes=plain["lanes"],
        left=("no padding: what the attacker sees", panel(plain)),
        right=("padded to 32 KiB: what the attacker sees", panel(padded)),
        notes=[f"{trials} trials each, {DOCUMENTS} documents, chance = {chance:.1%}; "
               "the attacker used only the capture (no keys)"],
        data={"documents": DOCUMENTS, "without_padding": strip(plain), "with_padding": strip(padded)})


# -- the report's charts ---------------------------------------------------------------------

def _nice_step(top: float) -> float:
    raw = top / 5
    mag = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _hatch(pattern: str) -> str:
    """The hatching of the padded bars, defined in each chart that uses it (an SVG can't rely on another's)."""
    return (f'<defs><pattern id="{pattern}" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
            '<line x1="0" y1="0" x2="0" y2="6" stroke="#b03a00" stroke-width="2.4"/></pattern></defs>')


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
           _hatch("hatch"),
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
    cx = left + pw / n                       # the chance line
    out = [f'<svg class="chart accuracy" viewBox="0 0 {w} {h}" width="{w}" '
           f'height="{h}" role="img" aria-label="attacker accuracy with and without padding">', _hatch("hatch-acc"),
           f'<text x="{w / 2}" y="16" text-anchor="middle" class="chart-title">Attacker accuracy '
           f'(guessing the document from sizes alone)</text>']
    for pct in range(0, 101, 20):
        x = left + pw * pct / 100
        out.append(f'<line x1="{x:.1f}" y1="46" x2="{x:.1f}" y2="116" stroke="#ddd"/>'
                   f'<text x="{x:.1f}" y="132" text-anchor="middle" class="tick">{pct}</text>')
    for i, (name, r, style) in enumerate(rows):
        y = 52 + i * 32
        acc = r.get("accuracy", 0)
        fill = 'fill="#1d3f73"' if style == "solid" else 'fill="url(#hatch-acc)" stroke="#b03a00" stroke-width="1.2"'
        end = left + pw * acc
        # The label goes right of the bar, or right of the chance line where the two would touch.
        label_x = end + 6 if not -48 < end - cx < 8 else cx + 8
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" class="small">{e(name)}</text>'
                   f'<rect class="bar {style}" x="{left}" y="{y}" width="{pw * acc:.1f}" height="22" {fill}/>'
                   f'<text x="{label_x:.1f}" y="{y + 15}" class="small accuracy-label">{100 * acc:.0f} %</text>')
    out.append(f'<line x1="{cx:.1f}" y1="40" x2="{cx:.1f}" y2="118" stroke="#000" stroke-width="1.5" '
               f'stroke-dasharray="5 3"/><text x="{cx + 4:.1f}" y="40" class="small">chance 1/{n} '
               f'= {100 / n:.1f} %</text>'
               f'<line x1="{left}" y1="116" x2="{left + pw}" y2="116" stroke="#000"/>'
               f'<text x="{left + pw / 2}" y="156" text-anchor="middle" class="axis-label">'
               f'guessed right (% of trials)</text></svg>')
    return "".join(out)
