#!/usr/bin/env python3
"""Benchmark: scenario wall time (the analyzer against tshark: benchmarks/analyzer.py).

Prints, from one run on this machine:

  each scenario   `labctl run NAME` wall time on a warm lab (median of --repeat),
                  and the in-process time the scenario reports for itself
  verify cases    the verification matrix one case at a time (in process)

Targets: each scenario <= 1.5 s warm; the verify matrix <= 10 s; every attack
but traffic analysis <= 3 s; traffic analysis (2 x 160 trials) <= 30 s.

    python3 benchmarks/scenarios.py [--repeat 5] [--json] [--only NAME ...]

It brings up its own lab (its own project name) and always takes it down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from common import labctl  # noqa: E402  (benchmarks/common.py puts the repository on sys.path)

from labctl.lab import Lab  # noqa: E402
from labctl.scenarios import NAMES, traffic_analysis  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median is shown)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=NAMES,
                        help="time only these scenarios (and skip the verify matrix per case)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tlslab-bench-"))
    env = {"LAB_CERTS_DIR": str(tmp / "certs")}
    project = f"benchs{uuid.uuid4().hex[:6]}"
    figures: dict = {"scenarios": {}}
    try:
        labctl(project, env, "up")
        lab = Lab(project=project, certs_dir=Path(env["LAB_CERTS_DIR"]))
        for name in args.only or NAMES:
            labctl(project, env, "run", name)                   # warm-up
            wall = [labctl(project, env, "run", name) for _ in range(args.repeat)]
            from labctl import scenarios
            inner = [scenarios.load(name).run(lab, scenarios.Options()).seconds for _ in range(args.repeat)]
            figures["scenarios"][name] = {"cli_wall_s": statistics.median(wall),
                                          "in_process_s": statistics.median(inner)}

        from labctl.scenarios import Options, verify
        if "traffic-analysis" in figures["scenarios"]:
            ta = figures["scenarios"]["traffic-analysis"]["in_process_s"]
            figures["traffic_analysis_trials_per_s"] = 2 * traffic_analysis.TRIALS / ta
        if not args.only:
            figures["verify_cases"] = {
                case.name: statistics.median(verify.run(lab, Options((case.name,))).seconds for _ in range(3))
                for case in verify.CASES}

    finally:
        labctl(project, env, "down", "--volumes")
        shutil.rmtree(tmp, ignore_errors=True)

    figures["machine"] = f"{platform.node()} {os.cpu_count()} cores, {platform.platform()}"
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"scenarios on {figures['machine']} (median of {args.repeat})")
    targets = {"mitm": "<= 3 s", "dns-spoof": "<= 3 s", "downgrade": "<= 3 s", "forward-secrecy": "<= 3 s",
               "sslstrip": "<= 3 s", "encrypted-dns": "<= 3 s", "offload": "<= 3 s",
               "traffic-analysis": "<= 30 s", "verify": "<= 10 s"}
    for name, f in figures["scenarios"].items():
        print(f"  {'labctl run ' + name:.<34} {f['cli_wall_s']:6.2f} s   (in process {f['in_process_s']:.2f} s)"
              f"   {targets.get(name, '<= 1.5 s')}")
    if "traffic_analysis_trials_per_s" in figures:
        print(f"  traffic analysis: {figures['traffic_analysis_trials_per_s']:.0f} trials/s "
              f"({2 * traffic_analysis.TRIALS} trials, with and without padding)")
    per_case = figures.get("verify_cases")
    if per_case and "verify" in figures["scenarios"]:
        print(f"  verify, one case at a time (in process, median of 3): "
              f"{min(per_case.values()):.2f}–{max(per_case.values()):.2f} s per case; whole matrix "
              f"{figures['scenarios']['verify']['in_process_s']:.2f} s in process   (matrix <= 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
