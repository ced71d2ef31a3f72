#!/usr/bin/env python3
"""Benchmark: scenario wall time, and the analyzer against tshark on a large capture.

Prints, from one run on this machine:

  each scenario   `labctl run NAME` wall time on a warm lab (median of --repeat),
                  and the in-process time the scenario reports for itself
  bulk capture    a TLS transfer of --bulk-mb megabytes through the wire,
                  captured with a 128 MiB buffer (must drop nothing)
  analyzer        labctl's analyzer on that pcap (records, flows, streams)
  tshark          `tshark -T fields -e tls.record.content_type -e tls.record.length`
                  on the same file, in the same run
  ratio           tshark time / analyzer time (>= 1 means the analyzer is faster)

  verify cases    the verification matrix one case at a time (in process)

Targets: each scenario <= 1.5 s warm; the verify matrix <= 10 s; every attack
but traffic analysis <= 3 s; traffic analysis (2 x 160 trials) <= 30 s; ratio >= 1.

    python3 benchmarks/scenarios.py [--repeat 5] [--bulk-mb 100] [--json]

It brings up its own lab (its own project name) and always takes it down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import labctl  # noqa: E402  (benchmarks/common.py puts the repository on sys.path)

from labctl import capture  # noqa: E402
from labctl.tls.analyzer import analyze  # noqa: E402
from labctl.lab import Lab  # noqa: E402
from labctl.scenarios import NAMES, traffic_analysis  # noqa: E402


def bulk_capture(lab: Lab, megabytes: int) -> bytes:
    name = f"bulk-{uuid.uuid4().hex[:6]}"
    capture.start(lab, name, buffer_mib=128)
    try:
        status, out, err = lab.exec("client", ["python3", "/app/client.py", "server.lab.test",
                                               "--path", f"/bytes/{megabytes * 1_000_000}"], user="lab", timeout=120)
    finally:
        stats = capture.stop(lab, name)
    report = json.loads(out)
    if status != 0 or not report["ok"] or not stats.complete:
        raise SystemExit(f"bulk capture failed: client {report.get('error')}, capture {stats}")
    data = capture.read(lab, name)
    capture.remove(lab, name)
    return data


def time_it(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median is shown)")
    parser.add_argument("--bulk-mb", type=int, default=100, help="size of the bulk TLS transfer (MB)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    tshark = shutil.which("tshark")
    if tshark is None:
        raise SystemExit("tshark is needed for the comparison (apt-get install tshark)")

    tmp = Path(tempfile.mkdtemp(prefix="tlslab-bench-"))
    env = {"LAB_CERTS_DIR": str(tmp / "certs")}
    project = f"benchs{uuid.uuid4().hex[:6]}"
    figures: dict = {"scenarios": {}}
    try:
        labctl(project, env, "up")
        lab = Lab(project=project, certs_dir=Path(env["LAB_CERTS_DIR"]))
        for name in NAMES:
            labctl(project, env, "run", name)                   # warm-up
            wall = [labctl(project, env, "run", name) for _ in range(args.repeat)]
            from labctl import scenarios
            inner = [scenarios.load(name).run(lab, scenarios.Options()).seconds for _ in range(args.repeat)]
            figures["scenarios"][name] = {"cli_wall_s": statistics.median(wall),
                                          "in_process_s": statistics.median(inner)}

        from labctl.scenarios import Options, verify
        ta = figures["scenarios"]["traffic-analysis"]["in_process_s"]
        figures["traffic_analysis_trials_per_s"] = 2 * traffic_analysis.TRIALS / ta
        figures["verify_cases"] = {
            case.name: statistics.median(verify.run(lab, Options((case.name,))).seconds for _ in range(3)) for case in verify.CASES}

        data = bulk_capture(lab, args.bulk_mb)
        pcap = tmp / "bulk.pcap"
        pcap.write_bytes(data)
        observation = analyze(data)
        conn = observation.tls[0]
        figures["bulk"] = {"transfer_mb": args.bulk_mb, "pcap_mb": round(len(data) / 1e6, 1),
                           "packets": observation.frames, "tls_records": len(conn.records)}
        figures["analyzer_s"] = time_it(lambda: analyze(data), 3)
        argv = [tshark, "-r", str(pcap), "-n", "-T", "fields", "-e", "tls.record.content_type",
                "-e", "tls.record.length"]
        figures["tshark_s"] = time_it(lambda: subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                                                             stderr=subprocess.DEVNULL), 3)
        figures["tshark_over_analyzer"] = figures["tshark_s"] / figures["analyzer_s"]
    finally:
        labctl(project, env, "down", "--volumes")
        shutil.rmtree(tmp, ignore_errors=True)

    figures["machine"] = f"{platform.node()} {os.cpu_count()} cores, {platform.platform()}"
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"scenarios and analyzer on {figures['machine']} (median of {args.repeat}; analyzer/tshark of 3)")
    targets = {"mitm": "<= 3 s", "dns-spoof": "<= 3 s", "downgrade": "<= 3 s", "forward-secrecy": "<= 3 s",
               "traffic-analysis": "<= 30 s", "verify": "<= 10 s"}
    for name, f in figures["scenarios"].items():
        print(f"  {'labctl run ' + name:.<34} {f['cli_wall_s']:6.2f} s   (in process {f['in_process_s']:.2f} s)"
              f"   {targets.get(name, '<= 1.5 s')}")
    print(f"  traffic analysis: {figures['traffic_analysis_trials_per_s']:.0f} trials/s "
          f"({2 * traffic_analysis.TRIALS} trials, with and without padding)")
    per_case = figures["verify_cases"]
    print(f"  verify, one case at a time (in process, median of 3): "
          f"{min(per_case.values()):.2f}–{max(per_case.values()):.2f} s per case; whole matrix "
          f"{figures['scenarios']['verify']['in_process_s']:.2f} s in process   (matrix <= 10 s)")
    b = figures["bulk"]
    print(f"  bulk capture: {b['transfer_mb']} MB over TLS, {b['pcap_mb']} MB pcap, {b['packets']} packets, "
          f"{b['tls_records']} TLS records, 0 dropped")
    print(f"  {'analyzer':.<34} {figures['analyzer_s']:6.2f} s")
    print(f"  {'tshark -T fields (record type, length)':.<34} {figures['tshark_s']:6.2f} s")
    print(f"  {'tshark / analyzer':.<34} {figures['tshark_over_analyzer']:6.2f} x   >= 1 x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
