#!/usr/bin/env python3
"""wirectl: start and stop named packet captures on the wire.

The wire is the lab's router: the client, server and dns send each other's
traffic to it with host routes, and it forwards every packet back out of the
same interface. A capture therefore records each packet as it comes in
(`tcpdump -Q in`): once, never twice.

    wirectl start NAME      begin /captures/NAME.pcap; returns once tcpdump listens
    wirectl stop NAME       end it; prints tcpdump's counters as JSON
    wirectl rm NAME         delete a stopped capture
    wirectl list            captures on disk and whether each is running
    wirectl turn --owner T --token S
                            take the lab's turn: one run at a time (see turn())

Every command prints one JSON object on stdout. The counters matter: a
capture whose kernel dropped packets is incomplete, and labctl refuses to
draw conclusions from it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

CAPTURES = Path(os.environ.get("WIRE_CAPTURES", "/captures"))
STATE = Path(os.environ.get("WIRE_STATE", "/run/wire"))
INTERFACE = os.environ.get("WIRE_INTERFACE", "eth0")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Kernel buffer for tcpdump (-B). With libpcap's 2 MiB default a 100 MB
# transfer lost 15 % of its packets on the project's machines; 128 MiB lost
# none but takes 0.8 s to set up (8 MiB: 0.05 s), too slow for every
# scenario. The default suits ordinary exchanges of a few kilobytes; bulk
# captures ask for more (--buffer-mib), and drops are always reported.
DEFAULT_BUFFER_MIB = 8
RUN_PREFIX = "run-"       # scenario captures: started and stopped within a run's turn
COUNTER_RE = re.compile(r"^(\d+) packets? (captured|received by filter|dropped by kernel)", re.M)


class WireError(Exception):
    pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _paths(name: str) -> tuple[Path, Path, Path]:
    if not NAME_RE.match(name):
        raise WireError(f"capture name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return CAPTURES / f"{name}.pcap", STATE / f"{name}.pid", STATE / f"{name}.log"


def start(name: str, buffer_mib: int = DEFAULT_BUFFER_MIB, replace: str = "", direction: str = "in",
          timeout: float = 5.0, turn_token: str | None = None) -> dict:
    """Start tcpdump for NAME. A scenario's capture (run-...) starts only inside the run's turn
    (``turn_token``, see turn()): a start still in flight when its run died must not begin
    recording after the wire cleaned up."""
    if turn_token is None and name.startswith(RUN_PREFIX):
        raise WireError(f"capture {name!r} is a run's: it needs the run's --turn")
    with in_turn(turn_token):
        return _start(name, buffer_mib, replace, direction, timeout)


def _start(name: str, buffer_mib: int, replace: str, direction: str, timeout: float) -> dict:
    pcap, pidfile, log = _paths(name)
    if replace:
        # Scenario runs keep their last capture on the wire until the next
        # run replaces it: one exec fewer per run, and the volume never grows.
        for old in CAPTURES.glob(f"{replace}*.pcap"):
            if old.stem != name and not _running(old.stem):
                remove(old.stem)
    if pidfile.exists() and _pid_alive(int(pidfile.read_text())):
        raise WireError(f"capture {name!r} is already running")
    STATE.mkdir(parents=True, exist_ok=True)
    pcap.unlink(missing_ok=True)
    # "in": what the wire forwards, once. "inout": also what the wire itself
    # sends, for attack scenarios where it answers instead of forwarding.
    command = ["tcpdump", "-i", INTERFACE, "-Q", direction, "-n", "-s", "0", "-B", str(buffer_mib * 1024),
               # immediate mode: packets reach tcpdump as they arrive, so a stop
               # right after the last packet loses nothing (no 1 s block timeout).
               # No -U: writes stay buffered (fewer syscalls under load, when
               # the ring could overflow) and are flushed when tcpdump stops.
               "--immediate-mode", "-w", str(pcap)]
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "listening on" in text:
            return {"name": name, "pid": proc.pid, "file": str(pcap), "running": True}
        if proc.poll() is not None:
            raise WireError(f"tcpdump exited at start: {text.strip().splitlines()[-1:] or ['no output']}")
        time.sleep(0.005)
    proc.kill()
    raise WireError(f"tcpdump did not start listening within {timeout:g} s")


def _signal(pid: int, signum: int) -> bool:
    """Send SIGNUM to PID; False if it had exited meanwhile (between a check and the kill: not an error)."""
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


def stop(name: str, timeout: float = 5.0) -> dict:
    pcap, pidfile, log = _paths(name)
    if not pidfile.exists():
        raise WireError(f"no capture named {name!r} was started")
    pid = int(pidfile.read_text())
    if _pid_alive(pid):
        _signal(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = False
    if _pid_alive(pid):
        killed = _signal(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    text = log.read_text(errors="replace") if log.exists() else ""
    counters = {kind.replace(" ", "_"): int(n) for n, kind in COUNTER_RE.findall(text)}
    # "received by filter" counts both directions before `-Q in` is applied,
    # so it is not compared with "captured"; kernel drops are what lose packets.
    complete = not killed and "captured" in counters and counters.get("dropped_by_kernel", 0) == 0
    return {"name": name, "file": str(pcap), "running": False,
            "bytes": pcap.stat().st_size if pcap.exists() else 0,
            "packets": counters.get("captured", 0),
            "received_by_filter": counters.get("received_by_filter", 0),
            "dropped_by_kernel": counters.get("dropped_by_kernel", 0),
            "complete": complete, "killed": killed}


def _running(name: str) -> bool:
    pidfile = STATE / f"{name}.pid"
    try:
        return _pid_alive(int(pidfile.read_text()))
    except (OSError, ValueError):
        return False


def remove(name: str) -> dict:
    pcap, pidfile, log = _paths(name)
    if pidfile.exists() and _pid_alive(int(pidfile.read_text())):
        raise WireError(f"capture {name!r} is still running; stop it first")
    existed = pcap.exists()
    for path in (pcap, pidfile, log):
        path.unlink(missing_ok=True)
    return {"name": name, "removed": existed}


def listing() -> dict:
    items = []
    for pcap in sorted(CAPTURES.glob("*.pcap")):
        pidfile = STATE / f"{pcap.stem}.pid"
        running = pidfile.exists() and _pid_alive(int(pidfile.read_text()))
        items.append({"name": pcap.stem, "bytes": pcap.stat().st_size, "running": running})
    return {"captures": items}


TURN_LOCK = STATE / "turn.lock"
TURN_OWNER = STATE / "turn.owner"          # {"owner": who, "token": the turn's secret}, while a turn is held
TURN_ABANDONED = STATE / "turn.abandoned"
OPS_LOCK = STATE / "ops.lock"              # starts hold it shared, sweeps exclusive


@contextlib.contextmanager
def _ops(exclusive: bool) -> Iterator[None]:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(OPS_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


@contextlib.contextmanager
def in_turn(token: str | None) -> Iterator[None]:
    """For a start that belongs to a run: hold off sweeps while it starts, and refuse it unless
    ``token`` is the turn being held now (its run may have died while the exec was on its way)."""
    if token is None:
        yield
        return
    with _ops(exclusive=False):
        try:
            held = json.loads(TURN_OWNER.read_text()).get("token")
        except (OSError, ValueError):
            held = None
        if held != token:
            raise WireError("this run no longer holds the lab's turn (it was interrupted or killed)")
        yield


def _say(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _sweep() -> list[str]:
    """Stop what a run that ended without cleaning up left on the wire: its
    capture (scenario captures are named run-...) and the attacker."""
    swept = []
    for pidfile in sorted(STATE.glob(f"{RUN_PREFIX}*.pid")):
        if _running(pidfile.stem):
            stop(pidfile.stem)
            swept.append(f"capture {pidfile.stem}")
    if (STATE / "attacker.pid").exists():
        subprocess.run([sys.executable, str(Path(__file__).with_name("attacker.py")), "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        swept.append("attacker")
    return swept


def turn(owner: str, token: str) -> int:
    """Hold the lab's turn for as long as stdin stays open.

    Runs on one lab take turns, so that a verdict never depends on another
    run's packets, key logs or attacker. labctl keeps this process's stdin
    open (a docker exec it stays attached to) while its run lasts: the lock
    is an flock on /run/wire/turn.lock, released when this process ends,
    which it does when labctl writes "done" and closes, or when labctl's
    connection goes away for any reason (Ctrl-C, SIGKILL, a lost laptop). In
    the last case the run did not clean up, so this process does it: it
    stops the run's capture and the attacker, and leaves a note so the next
    holder also stops the run's client processes (in another container).

    ``token`` is the run's secret for this turn: a capture or attacker start
    carrying it is accepted only while this turn is held (in_turn), so one
    still on its way when the run died cannot start after the sweep.

    Prints one JSON line per event: {"waiting": OWNER} while another run
    holds the turn, then {"held": true, "previous": "clean"|"abandoned"}.
    """
    STATE.mkdir(parents=True, exist_ok=True)
    lock = open(TURN_LOCK, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(TURN_OWNER.read_text())["owner"]
        except (OSError, ValueError, KeyError):
            holder = "another run"
        _say({"waiting": holder})
        # Wait without polling: a thread blocks in flock and writes to a pipe
        # once it holds the lock, while this one blocks on stdin and that pipe.
        # (A 50 ms poll cost a waiting run half the wire's CPU on a starved host.)
        got, taken = os.pipe()
        threading.Thread(target=lambda: (fcntl.flock(lock, fcntl.LOCK_EX), os.write(taken, b"x")),
                         daemon=True).start()
        while True:
            ready = select.select([sys.stdin, got], [], [])[0]
            if got in ready:
                break
            # labctl gave up waiting (Ctrl-C): leave without taking the turn.
            if not os.read(sys.stdin.fileno(), 4096):
                return 0
    previous = "abandoned" if TURN_ABANDONED.exists() else "clean"
    with _ops(exclusive=True):
        swept = _sweep()                # normally nothing: the wire restarted, or a holder was killed mid-sweep
        TURN_OWNER.write_text(json.dumps({"owner": owner, "token": token}))
    _say({"held": True, "previous": previous, "swept": swept})
    told = b""
    while True:
        chunk = os.read(sys.stdin.fileno(), 4096)
        if not chunk:
            break
        told += chunk
    # Starts in flight finish first (they hold the ops lock shared); later ones find no turn.
    with _ops(exclusive=True):
        TURN_OWNER.unlink(missing_ok=True)
        if b"done" in told:
            TURN_ABANDONED.unlink(missing_ok=True)
        else:
            _sweep()
            TURN_ABANDONED.write_text(owner)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start and stop named packet captures on the wire.")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb, text in (("start", "begin capturing to /captures/NAME.pcap"),
                       ("stop", "stop capturing and print tcpdump's counters")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("name", help="capture name: letters, digits, '.', '_' or '-'")
        if verb == "start":
            p.add_argument("--buffer-mib", type=int, default=DEFAULT_BUFFER_MIB, choices=range(1, 1025),
                           metavar="MIB", help=f"kernel capture buffer (default {DEFAULT_BUFFER_MIB})")
            p.add_argument("--direction", choices=("in", "inout"), default="in",
                           help="in: each forwarded packet once (default); inout: also the wire's own packets")
            p.add_argument("--turn", metavar="TOKEN",
                           help="the run's turn (wirectl turn --token); needed for run-... captures")
            p.add_argument("--replace", default="", metavar="PREFIX",
                           help="first delete stopped captures whose names start with PREFIX")
            p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                           help="how long tcpdump may take to start listening (default 5)")
    p = sub.add_parser("rm", help="delete a stopped capture")
    p.add_argument("name", help="capture name")
    sub.add_parser("list", help="list captures on disk")
    p = sub.add_parser("turn", help="hold the lab's turn while stdin stays open")
    p.add_argument("--owner", required=True, help="who holds it, shown to runs that wait")
    p.add_argument("--token", required=True, help="the run's secret for this turn (see start --turn)")
    args = parser.parse_args(argv)
    if args.command == "turn":
        return turn(args.owner, args.token)
    try:
        if args.command == "start":
            result = start(args.name, args.buffer_mib, args.replace, args.direction, args.timeout, args.turn)
        elif args.command == "stop":
            result = stop(args.name)
        elif args.command == "rm":
            result = remove(args.name)
        else:
            result = listing()
    except (WireError, OSError) as exc:
        return reply({"error": str(exc)}, 1)
    return reply(result)


def reply(document: dict, status: int = 0) -> int:
    """Print DOCUMENT as one JSON line (what labctl reads back) and return STATUS, the exit status."""
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
