"""traffic-analysis: which page did they read? The sizes tell, unless they are padded.

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
"""

from __future__ import annotations

import random
import time
from collections import Counter

from .. import attack, runner
from ..lab import Lab
from ..tls.analyzer import S2C, Observation

NAME = "traffic-analysis"
TITLE = "Traffic analysis: record sizes reveal which document was fetched"
SUMMARY = "an observer guesses which of 8 documents was fetched from sizes alone; padding brings it to chance"
CHECKS = ("capture complete", "accuracy without padding >= 95 %", "accuracy with padding <= 1/N + 10 points")
DOCUMENTS = 8
TRIALS = 160          # >= 100; with padding, chance +10 points is then 3.8 standard deviations away


def fingerprint(obs: Observation, port: int) -> tuple[int, int]:
    """What the attacker measures per connection: server bytes of application data, and record count."""
    conn = next((t for t in obs.tls if t.flow.client_port == port), None)
    if conn is None:
        return (0, 0)
    records = [r for r in conn.records if r.direction == S2C and r.content_type == 23]
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
    ports = [r.get("local_port") for r in b.reports]
    profiles = {doc: fingerprint(b.observation, ports[doc]) for doc in range(DOCUMENTS)}
    guesses = [classify(profiles, fingerprint(b.observation, port), rng) for port in ports[DOCUMENTS:]]
    right = sum(g == t for g, t in zip(guesses, truth))
    return {"padded": padded, "trials": trials, "correct": right, "accuracy": right / trials,
            "failed_fetches": len(failed), "profiles": {str(d): p[0] for d, p in profiles.items()},
            "fetched": dict(Counter(truth)), "stats": b.stats, "pcap": b.pcap, "observation": b.observation}


def run(lab: Lab, trials: int = TRIALS) -> attack.AttackResult:
    started = time.monotonic()
    rng = random.Random()            # a fresh seed each run: the result is not rehearsed
    plain = one_round(lab, False, trials, rng)
    padded = one_round(lab, True, trials, rng)
    chance = 1 / DOCUMENTS
    complete = plain["stats"].complete and padded["stats"].complete
    checks = [
        runner.Check("capture complete", complete and not plain["failed_fetches"] and not padded["failed_fetches"],
                     f"{plain['stats'].packets + padded['stats'].packets} packets, "
                     f"{plain['failed_fetches'] + padded['failed_fetches']} failed fetches"),
        runner.Check("accuracy without padding >= 95 %", plain["accuracy"] >= 0.95,
                     f"{plain['correct']}/{trials} guessed right from sizes alone"),
        runner.Check("accuracy with padding <= 1/N + 10 points", padded["accuracy"] <= chance + 0.10,
                     f"{padded['correct']}/{trials} right; chance is {chance:.1%}"),
    ]

    def panel(r: dict) -> list[str]:
        lines = [f"accuracy {r['correct']}/{trials} = {r['accuracy']:.0%}", "server bytes per document:"]
        lines += [f"  doc {d}: {size} B" for d, size in r["profiles"].items()]
        return lines

    strip = lambda r: {k: v for k, v in r.items() if k not in ("stats", "pcap", "observation")}  # noqa: E731
    stats = plain["stats"]
    return attack.AttackResult(
        NAME, TITLE, checks, stats, plain["observation"],
        left=("no padding: what the attacker sees", panel(plain)),
        right=("padded to 32 KiB: what the attacker sees", panel(padded)),
        notes=[f"{trials} trials each, {DOCUMENTS} documents, chance = {chance:.1%}; "
               "the attacker used only the capture (no keys)"],
        data={"documents": DOCUMENTS, "without_padding": strip(plain), "with_padding": strip(padded)},
        pcap=plain["pcap"], seconds=time.monotonic() - started)
