#!/usr/bin/env python3
"""Benchmark: the analyzer against tshark on large TLS captures made through the lab, and its memory.

Prints, measured side by side in the same run on the same files:
  analyzer        labctl.tls.analyzer.analyze_file(F, keep=False) in this process (median of
                  --repeat): what `labctl analyze` does with a capture over 64 MiB and no key
                  log, records and handshakes whole, application data previewed
  keeping all     analyze_file(F): every byte kept (a key log is given; the lab's own runs)
  labctl analyze  the command a user runs, `labctl analyze F --json`, wall time
  tshark          `tshark -r F -n -T fields -e tls.record.content_type -e tls.record.length`
  ratio           tshark time / analyzer time (target: >= 3, the analyzer three times faster)
  peak memory     the analyzing process's peak RSS above a bare `import labctl.tls.analyzer`
                  (/proc/self/status VmHWM, in a fresh process per file), for each capture
                  size and for a file of random bytes behind a valid pcap header (refused)

Memory should be bounded by the largest TCP stream's window, not by the file's
size: the peak stays flat from the smallest capture to the largest.

    python3 benchmarks/analyzer.py [--sizes 100,300] [--repeat 5] [--pcap FILE] [--json]

Without --pcap the captures are made through a lab of its own (a unique
compose project, removed at the end). With --pcap only that file is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, labctl, time_it  # noqa: E402

from labctl import capture  # noqa: E402
from labctl.lab import Lab  # noqa: E402
from labctl.tls.analyzer import analyze_file  # noqa: E402

TSHARK_FIELDS = ("-n", "-T", "fields", "-e", "tls.record.content_type", "-e", "tls.record.length")

PEAK = """
import sys
from labctl.tls.analyzer import analyze_file
from labctl.errors import LabError
def hwm():
    # VmHWM: this process's own peak RSS (kB). Not ru_maxrss, which Linux carries across fork and
    # exec: a child of a parent that once held 600 MB starts with 600 MB there.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
try:
    analyze_file(sys.argv[1], keep=False)
    outcome = "analyzed"
except LabError as exc:
    outcome = "refused: " + str(exc)
print(base, hwm(), outcome)
"""


def bulk_capture(lab: Lab, megabytes: int, dest: Path) -> None:
    """One TLS download of MEGABYTES through the wire, its capture written to DEST."""
    name = f"bulk-{uuid.uuid4().hex[:6]}"
    capture.start(lab, name, buffer_mib=128)
    try:
        status, out, _ = lab.exec("client", ["python3", "/app/client.py", "server.lab.test",
                                             "--path", f"/bytes/{megabytes * 1_000_000}"], user="lab", timeout=300)
    finally:
        stats = capture.stop(lab, name)
    report = json.loads(out)
    if status != 0 or not report["ok"] or not stats.complete:
        raise SystemExit(f"bulk capture failed: client {report.get('error')}, capture {stats}")
    dest.write_bytes(capture.read(lab, name))
    capture.remove(lab, name)


def peak_mb(path: Path) -> tuple[float, str]:
    """Peak RSS (MB) of analyzing PATH in a fresh process, above the same process before it began."""
    out = subprocess.run([sys.executable, "-c", PEAK, str(path)], cwd=ROOT, check=True, capture_output=True,
                         text=True, timeout=600).stdout.split(maxsplit=2)
    return (int(out[1]) - int(out[0])) / 1024, out[2].strip()


def measure(pcap: Path, repeat: int, tshark: str) -> dict:
    observation = analyze_file(pcap, keep=False)
    analyzer_s = time_it(lambda: analyze_file(pcap, keep=False), repeat)
    keeping_s = time_it(lambda: analyze_file(pcap), repeat)
    tshark_s = time_it(lambda: subprocess.run([tshark, "-r", str(pcap), *TSHARK_FIELDS], check=True,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), repeat)
    cli_s = time_it(lambda: subprocess.run([sys.executable, "-m", "labctl", "analyze", str(pcap), "--json"],
                                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL), repeat)
    peak, _ = peak_mb(pcap)
    return {"file_mb": round(pcap.stat().st_size / 1e6, 1), "packets": observation.frames,
            "tls_records": sum(len(c.records) for c in observation.tls),
            "analyzer_s": analyzer_s, "keeping_all_s": keeping_s, "labctl_analyze_s": cli_s, "tshark_s": tshark_s,
            "tshark_over_analyzer": tshark_s / analyzer_s, "tshark_over_labctl_analyze": tshark_s / cli_s,
            "peak_mb": round(peak, 1)}


def random_file(path: Path, megabytes: int) -> None:
    """A valid little-endian pcap header (Ethernet, snaplen 262144), then random bytes."""
    header = bytes.fromhex("d4c3b2a1020004000000000000000000" "00000400" "01000000")
    with open(path, "wb") as out:
        out.write(header)
        for _ in range(megabytes):
            out.write(os.urandom(1_000_000))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,300", help="TLS transfers to capture, in MB (comma-separated)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pcap", type=Path, help="measure this capture only (no lab needed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tshark = shutil.which("tshark")
    if tshark is None:
        raise SystemExit("tshark is needed for the comparison (apt-get install tshark)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-analyzer-"))
    figures: dict = {"captures": {}}
    project = f"bencha{uuid.uuid4().hex[:6]}"
    env = {"LAB_CERTS_DIR": str(tmp / "certs")}
    up = False
    try:
        if args.pcap:
            figures["captures"][args.pcap.name] = measure(args.pcap, args.repeat, tshark)
        else:
            labctl(project, env, "up")
            up = True
            lab = Lab(project=project, certs_dir=Path(env["LAB_CERTS_DIR"]))
            for size in [int(s) for s in args.sizes.split(",")]:
                pcap = tmp / f"bulk-{size}.pcap"
                bulk_capture(lab, size, pcap)
                figures["captures"][f"{size} MB transfer"] = measure(pcap, args.repeat, tshark)
                pcap.unlink()
        noise = tmp / "random.pcap"
        random_file(noise, 300)
        peak, outcome = peak_mb(noise)
        figures["random_300mb"] = {"peak_mb": round(peak, 1), "outcome": outcome[:120]}
        figures["machine"] = f"{os.cpu_count()} cores"
    finally:
        if up:
            labctl(project, env, "down", "--volumes")
        shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"analyzer against tshark, same run ({figures['machine']}, median of {args.repeat})")
    for label, f in figures["captures"].items():
        print(f"  {label}: {f['file_mb']} MB file, {f['packets']} packets, {f['tls_records']} TLS records")
        print(f"    {'analyzer (in process)':.<40} {f['analyzer_s']:6.3f} s")
        print(f"    {'analyzer keeping every byte':.<40} {f['keeping_all_s']:6.3f} s")
        print(f"    {'labctl analyze F --json (wall)':.<40} {f['labctl_analyze_s']:6.3f} s")
        print(f"    {'tshark -T fields (type, length)':.<40} {f['tshark_s']:6.3f} s")
        print(f"    {'tshark / analyzer':.<40} {f['tshark_over_analyzer']:6.2f} x   target >= 3 x")
        print(f"    {'tshark / labctl analyze':.<40} {f['tshark_over_labctl_analyze']:6.2f} x")
        print(f"    {'peak memory above import':.<40} {f['peak_mb']:6.1f} MB")
    r = figures["random_300mb"]
    print(f"  300 MB of random bytes behind a pcap header: peak {r['peak_mb']:.1f} MB; {r['outcome']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
