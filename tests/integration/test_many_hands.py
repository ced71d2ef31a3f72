"""One lab, many hands: interrupted commands, runs at once, a slow machine.

- Interrupted: SIGINT or SIGTERM at offsets spread over a command's whole run
  (before the capture starts, while the attacker is in place, while the pcap
  is saved, after the verdict) leaves no tcpdump, no attacker, no iptables
  rule, no client process and no partial file, and prints one line.
- At once: four different scenarios started together on one lab pass, every
  time: runs take turns on the wire.
- Slow: with the lab's containers held to a twentieth of a CPU, runs are
  slow and still pass; a timeout too short for that says which setting to
  raise and draws no verdict.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_one_line_error, labctl, running_lab, start_lab, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("hands"), prefix="thands") as handle:
        yield handle


def spawn(project: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    """labctl in a process group of its own, as a shell runs a foreground command."""
    return subprocess.Popen([sys.executable, "-m", "labctl", "--project", project, *args], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)


def deliver(proc: subprocess.Popen, sig: signal.Signals, group: bool) -> None:
    """To labctl alone (kill PID, `timeout -s INT`), or to its whole process group, compose and
    all, as a terminal's Ctrl-C does."""
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)


def signal_for(i: int) -> tuple[signal.Signals, bool]:
    """SIGINT and SIGTERM in turn, each to the process and to its group: all four by i = 3."""
    return (signal.SIGINT if i % 2 == 0 else signal.SIGTERM), (i // 2) % 2 == 1


def leftovers(handle) -> list[str]:
    """What a run may leave behind on the lab: captures still running, tcpdump or attacker
    processes on the wire, nat rules, client processes labctl started."""
    lab = handle.lab()
    found = []
    wire = lab.container("wire")
    procs = wire.exec_run(["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"])
    for line in procs.output.decode(errors="replace").splitlines():
        if line.startswith(("tcpdump", "python3 /app/attacker.py")):
            found.append(f"wire process: {line.strip()}")
    nat = wire.exec_run(["iptables", "-t", "nat", "-S", "PREROUTING"]).output.decode()
    found += [f"wire nat rule: {rule}" for rule in nat.splitlines() if not rule.startswith("-P")]
    client = lab.container("client")
    tagged = client.exec_run(["sh", "-c", "grep -l TLSLAB_RUN= /proc/[0-9]*/environ 2>/dev/null || true"])
    found += [f"client process: {p}" for p in tagged.output.decode().split()
              if not p.startswith("/proc/self")]
    return found


def settle(handle, seconds: float = 3.0) -> list[str]:
    """Leftovers, allowing a kernel a moment to reap what was just stopped."""
    deadline = time.monotonic() + seconds
    while True:
        found = leftovers(handle)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _timed(handle, *args: str) -> float:
    started = time.monotonic()
    result = handle.run(*args)
    assert result.returncode == 0, result.stderr
    return time.monotonic() - started


COMMANDS = {
    "run tls": ("run", "tls", "--pcap", "{out}/tls.pcap", "--keylog", "{out}/tls.keylog"),
    "run mitm": ("run", "mitm", "--pcap", "{out}/mitm.pcap"),
    "run dns-spoof": ("run", "dns-spoof"),
    "run verify --client-cmd": ("run", "verify", "--client-cmd", "curl -sS --cacert {{ca}} {{url}}"),
    "report": ("report", "tls", "mitm", "--out", "{out}/report"),
    "client": ("client", "server.lab.test", "--secret", "hunter2"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_signal_at_any_instant_leaves_nothing_behind(lab, tmp_path, command):
    """Twelve offsets from 0.05 s to past the end of the command, SIGINT and SIGTERM in turn."""
    template = COMMANDS[command]
    whole = _timed(lab, *[a.format(out=tmp_path / "whole") for a in template])
    # From 0.1 s: before that Python itself is starting, before any line of labctl runs.
    offsets = [0.1 + i * (whole + 0.3) / 11 for i in range(12)]
    interrupted = 0
    for i, offset in enumerate(offsets):
        out = tmp_path / f"try{i}"
        out.mkdir()
        sig, group = signal_for(i)
        proc = spawn(lab.project, lab.env, *[a.format(out=out) for a in template])
        time.sleep(offset)
        deliver(proc, sig, group)
        stdout, stderr = proc.communicate(timeout=120)
        where = f"{command} with {sig.name} to the {'group' if group else 'process'} at {offset:.2f} s"
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, f"{where}: {stderr}"
        if proc.returncode in (130, 143):
            interrupted += 1
            assert proc.returncode == (130 if sig == signal.SIGINT else 143), where
            last = stderr.strip().splitlines()[-1]
            assert last == ("labctl: interrupted" if sig == signal.SIGINT else "labctl: terminated"), \
                f"{where}: {stderr}"
            assert [line for line in stderr.splitlines() if line.startswith("labctl:")] == [last], \
                f"{where}: more than one line about it: {stderr}"
        else:
            assert proc.returncode == 0, f"{where}: {stderr}"
        # No partial file, and what is there is whole and the owner's alone.
        for path in out.rglob("*"):
            assert not path.name.endswith(".partial") and not path.name.startswith("."), f"{where}: {path}"
            if path.is_file() and path.suffix in (".pcap", ".keylog"):
                assert path.stat().st_mode & 0o777 == 0o600, f"{where}: {path}"
                assert path.stat().st_size > 0, f"{where}: {path}"
        assert settle(lab) == [], where
        captures = lab.run("capture", "list", "--json").json()["captures"]
        assert not [c for c in captures if c["running"]], f"{where}: {captures}"
    assert interrupted >= 6, f"only {interrupted} of {len(offsets)} signals landed before {command} ended"
    result = lab.run("run", "tls")                  # and the lab is as good as before
    assert result.returncode == 0, result.stderr


def test_a_killed_run_is_cleaned_up_by_the_wire(lab):
    """SIGKILL leaves labctl no chance, at any instant (here ten, spread over `run mitm`, the
    capture's and the attacker's starts among them): the wire notices its turn's connection go,
    lets a start already on its way finish, then stops the capture and the attacker; a start
    that arrives later is refused. With no other run after it, within seconds."""
    whole = _timed(lab, "run", "mitm")
    for i in range(10):
        offset = 0.2 + i * whole / 9
        proc = spawn(lab.project, lab.env, "run", "mitm")
        time.sleep(offset)
        proc.kill()
        proc.communicate()
        on_the_wire = [f for f in settle(lab, 8) if not f.startswith("client process")]
        running = [c["name"] for c in lab.run("capture", "list", "--json").json()["captures"] if c["running"]]
        assert on_the_wire == [] and running == [], f"kill -9 at {offset:.2f} s: {on_the_wire} {running}"
    result = lab.run("run", "tls")          # the next run also stops a killed run's client processes
    assert result.returncode == 0, result.stderr
    assert settle(lab) == []


def test_four_scenarios_at_once_ten_times(lab):
    scenarios = ("tls", "plaintext", "mitm", "dns-spoof")
    waited = 0
    for round_ in range(10):
        procs = {name: spawn(lab.project, lab.env, "run", name) for name in scenarios}
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"round {round_}: `run {name}` beside three others: {stdout}{stderr}"
            assert "✘" not in stdout
            waited += f"waiting for another run on lab '{lab.project}'" in stderr
    assert waited >= 10, "the runs never overlapped: this test did not test taking turns"
    assert settle(lab) == []


def test_a_slow_machine_gives_slow_runs_not_false_verdicts(tmp_path_factory):
    """A twentieth of a CPU for each container: runs take many times longer and still pass;
    a timeout too short for that is an error naming the setting, not a ✘."""
    handle = start_lab(tmp_path_factory.mktemp("slow"), prefix="tslow")
    try:
        for c in handle.lab().containers().values():
            c.update(cpu_quota=5000, cpu_period=100000)
        for scenario in ("tls", "mitm", "verify"):
            # Given the time a starved machine needs (each exec in a container at 5 % of a CPU took
            # seconds, and on a busy host a minute): slow, and still the right verdict.
            result = handle.run("run", scenario, "--timeout", "300")
            assert result.returncode == 0, f"{scenario} on a slow lab: {result.stdout}{result.stderr}"
        result = handle.run("run", "tls", "--timeout", "0.5")
        assert_one_line_error(result, r"--timeout SECONDS or LAB_TIMEOUT")
        assert "✘" not in result.stdout
        result = labctl("--project", handle.project, "client", "server.lab.test",
                        env={**handle.env, "LAB_TIMEOUT": "0.3"})
        assert_one_line_error(result, r"--timeout SECONDS or LAB_TIMEOUT")
    finally:
        handle.run("down", "--volumes")


def test_an_interrupted_up_leaves_a_lab_up_or_none(tmp_path):
    """`up` of a new lab, interrupted at offsets over its whole run: afterwards the lab is
    either healthy or absent (never containers created and not started)."""
    from labctl.lab import Lab

    env = {"LAB_CERTS_DIR": str(tmp_path / "certs")}
    project = unique("tupint")
    started = time.monotonic()
    first = subprocess.run([sys.executable, "-m", "labctl", "-p", project, "up"], cwd=ROOT, capture_output=True,
                           text=True, env={**os.environ, **env})
    whole = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    subprocess.run([sys.executable, "-m", "labctl", "-p", project, "down", "--volumes"], cwd=ROOT,
                   capture_output=True, env={**os.environ, **env}, check=True)
    outcomes = []
    try:
        for i in range(8):
            offset = 0.1 + i * whole / 7
            proc = spawn(project, env, "up")
            time.sleep(offset)
            sig, group = signal_for(i)
            deliver(proc, sig, group)
            _, stderr = proc.communicate(timeout=300)
            assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
            lab = Lab(project=project, certs_dir=Path(env["LAB_CERTS_DIR"]))
            states = {s.service: s.state for s in lab.states(probe=False)}
            where = f"{sig.name} to the {'group' if group else 'process'} at {offset:.2f} s"
            if proc.returncode == 0:
                assert set(states.values()) == {"running"}, f"{where}: {states}"
            else:
                assert proc.returncode == (130 if sig == signal.SIGINT else 143), f"{where}: {stderr}"
                assert set(states.values()) == {"absent"}, f"{where}: {states}"
                assert lab.network() is None, where
                label = {"label": f"com.docker.compose.project={project}"}
                assert lab.docker.volumes.list(filters=label) == [], f"{where}: volumes (keys!) left"
            outcomes.append(proc.returncode)
            subprocess.run([sys.executable, "-m", "labctl", "-p", project, "down", "--volumes"], cwd=ROOT,
                           capture_output=True, env={**os.environ, **env}, check=True)
    finally:
        subprocess.run([sys.executable, "-m", "labctl", "-p", project, "down", "--volumes"], cwd=ROOT,
                       capture_output=True, env={**os.environ, **env})
    assert sum(1 for o in outcomes if o != 0) >= 4, outcomes
