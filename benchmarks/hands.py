#!/usr/bin/env python3
"""Benchmark: one lab, many hands. What taking turns costs, and what load does.

Prints, measured in one run on this machine:

  turn            taking and releasing the lab's turn (wirectl turn on the
                  wire, an attached exec), next to one plain `docker exec`
                  of `true` in the wire: the ratio is the turn's price in
                  execs (median of 20 each)
  four at once    `run tls`, `run plaintext`, `run mitm`, `run dns-spoof`
                  one after another (the sum of their wall times) and the
                  same four started together on one lab (the wall time until
                  the last ends); they take turns, so the ratio is near 1
  labs at once    --labs labs on one engine, `run tls` in all of them at
                  once: the slowest and the median wall time, next to one
                  `run tls` alone
  slow lab        `run tls` with each container held to a twentieth of a
                  CPU, next to the same lab unthrottled

    python3 benchmarks/hands.py [--repeat 3] [--labs 6] [--json]

Every lab made here is taken down with its volumes at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, labctl  # noqa: E402  (benchmarks/common.py puts the repository on sys.path)

from labctl import turn  # noqa: E402
from labctl.lab import Lab  # noqa: E402


def spawn(project: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labctl", "-q", "--project", project, *args], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def together(commands: list[tuple[str, tuple[str, ...]]], env: dict[str, str]) -> tuple[float, list[float]]:
    """Start every (project, args) at once; return the wall time to the last and each one's own."""
    started = time.perf_counter()
    procs = [(spawn(project, env, *args), args) for project, args in commands]
    ends = []
    for proc, args in procs:
        _, err = proc.communicate()
        ends.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"`labctl {' '.join(args)}` failed beside others: {err.decode()[-300:]}")
    return max(ends), ends


def measure_turn(project: str, env: dict[str, str]) -> dict[str, float]:
    lab = Lab(project=project, certs_dir=Path(env["LAB_CERTS_DIR"]))
    turns, execs = [], []
    for _ in range(20):
        t = time.perf_counter()
        with turn.taken(lab, "benchmark", lambda _: None):
            pass
        turns.append(time.perf_counter() - t)
        t = time.perf_counter()
        lab.exec("wire", ["true"])
        execs.append(time.perf_counter() - t)
    return {"turn_s": statistics.median(turns), "plain_exec_s": statistics.median(execs),
            "ratio": statistics.median(turns) / statistics.median(execs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per median (default 3)")
    parser.add_argument("--labs", type=int, default=6, help="labs on one engine for 'labs at once' (default 6)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    say = (lambda m: None) if args.json else (lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    figures: dict[str, dict[str, float]] = {}
    projects: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tlslab-bench-hands-") as tmp:
        env = {"LAB_CERTS_DIR": str(Path(tmp) / "certs")}
        try:
            main_lab = f"benchhands{uuid.uuid4().hex[:6]}"
            projects.append(main_lab)
            say(f"up {main_lab}")
            labctl(main_lab, env, "up")
            say("turn")
            figures["turn"] = measure_turn(main_lab, env)

            say("four scenarios, one after another and together")
            four = ("tls", "plaintext", "mitm", "dns-spoof")
            serial, parallel = [], []
            for _ in range(args.repeat):
                serial.append(sum(labctl(main_lab, env, "run", name) for name in four))
                parallel.append(together([(main_lab, ("run", name)) for name in four], env)[0])
            figures["four_at_once"] = {"one_after_another_s": statistics.median(serial),
                                       "together_s": statistics.median(parallel),
                                       "ratio": statistics.median(parallel) / statistics.median(serial)}

            say(f"{args.labs} labs at once")
            alone = statistics.median(labctl(main_lab, env, "run", "tls") for _ in range(args.repeat))
            others = [f"benchhands{uuid.uuid4().hex[:6]}" for _ in range(args.labs - 1)]
            projects += others
            for project in others:
                labctl(project, env, "up")
            slowest, each = together([(p, ("run", "tls")) for p in [main_lab, *others]], env)
            figures["labs_at_once"] = {"labs": args.labs, "alone_s": alone, "median_s": statistics.median(each),
                                       "slowest_s": slowest, "ratio_slowest_to_alone": slowest / alone}
            for project in others:
                labctl(project, env, "down", "--volumes")
            projects = [main_lab]

            say("slow lab")
            fast = statistics.median(labctl(main_lab, env, "run", "tls") for _ in range(args.repeat))
            containers = Lab(project=main_lab, certs_dir=Path(env["LAB_CERTS_DIR"])).containers().values()
            for c in containers:
                c.update(cpu_quota=5000, cpu_period=100000)
            slow = statistics.median(labctl(main_lab, env, "run", "tls") for _ in range(args.repeat))
            figures["slow_lab"] = {"cpu": 0.05, "normal_s": fast, "throttled_s": slow, "ratio": slow / fast}
        finally:
            for project in projects:
                subprocess.run([sys.executable, "-m", "labctl", "-q", "--project", project, "down", "--volumes"],
                               cwd=ROOT, env={**os.environ, **env}, capture_output=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    t, f, labs, slow = figures["turn"], figures["four_at_once"], figures["labs_at_once"], figures["slow_lab"]
    print(f"turn            take+release {t['turn_s'] * 1000:.0f} ms; a plain exec {t['plain_exec_s'] * 1000:.0f} ms "
          f"(ratio {t['ratio']:.1f})")
    print(f"four at once    one after another {f['one_after_another_s']:.2f} s; together {f['together_s']:.2f} s "
          f"(ratio {f['ratio']:.2f})")
    print(f"labs at once    {labs['labs']} labs: alone {labs['alone_s']:.2f} s; median {labs['median_s']:.2f} s, "
          f"slowest {labs['slowest_s']:.2f} s (ratio {labs['ratio_slowest_to_alone']:.1f})")
    print(f"slow lab        normal {slow['normal_s']:.2f} s; at {slow['cpu']} CPU {slow['throttled_s']:.2f} s "
          f"(ratio {slow['ratio']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
