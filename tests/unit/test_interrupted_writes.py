"""A Ctrl-C at any line of a file write leaves no temporary file: the signal is sent for real
(os.kill) at each line labctl runs in turn, not raised by a mock at a place chosen in advance.

CI once found a `.tls.pcap.partial` after a SIGINT 0.38 s into `labctl run tls --pcap`: the
signal had landed between write_partial's return and the caller's cleanup. A line tracer
finds every such window.
"""

from __future__ import annotations

import os
import signal
import sys
import types
from pathlib import Path
from typing import Callable

import pytest

import labctl
from labctl import capture, files, report
from labctl.interrupts import raise_for

LABCTL = str(Path(labctl.__file__).parent)


def _lines_run(action: Callable[[], object]) -> int:
    """How many lines of labctl's own code ACTION runs."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line" and frame.f_code.co_filename.startswith(LABCTL):
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        action()
    finally:
        sys.settrace(None)
    return count


def _signal_at(line: int, action: Callable[[], object]) -> bool:
    """Run ACTION with a SIGINT sent at its LINE-th line of labctl code; True if it was interrupted."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line" and frame.f_code.co_filename.startswith(LABCTL):
            count += 1
            if count == line:
                sys.settrace(None)
                os.kill(os.getpid(), signal.SIGINT)
                return None
        return tracer

    old = signal.signal(signal.SIGINT, raise_for)
    sys.settrace(tracer)
    try:
        action()
        return False
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
        signal.signal(signal.SIGINT, old)


def _every_line(tmp_path: Path, action: Callable[[Path], object]) -> int:
    """Signal ACTION at each of its lines in turn, each in a fresh folder; return how many were interrupted."""
    total = _lines_run(lambda: action(tmp_path / "dry-run"))
    assert total > 5, "the tracer saw no labctl code"
    interrupted = 0
    for line in range(1, total + 1):
        folder = tmp_path / f"at-{line}"
        folder.mkdir()
        interrupted += _signal_at(line, lambda: action(folder))
        left = sorted(p.name for p in folder.rglob("*") if p.name.endswith(".partial") or
                      p.name.startswith(".labctl-probe"))
        assert not left, f"a SIGINT at line {line} of {total} left {left}"
    return interrupted


def _dry(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    return folder


def test_write_whole(tmp_path):
    def action(folder):
        files.write_whole(b"secret", _dry(folder) / "tls.keylog")
    assert _every_line(tmp_path, action) > 0


def test_checking_an_output_path(tmp_path):
    def action(folder):
        capture.check_output(str(_dry(folder) / "tls.pcap"))
    assert _every_line(tmp_path, action) > 0


def test_checking_an_output_path_whose_folder_is_still_to_be_made(tmp_path):
    def action(folder):
        capture.check_output(str(_dry(folder) / "new" / "tls.pcap"))
    assert _every_line(tmp_path, action) > 0


def test_writing_a_report(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "page", lambda *args, **kwargs: "<html></html>")
    monkeypatch.setattr(report, "sequence", lambda result, lanes=None: [])
    monkeypatch.setattr(report, "index_json", lambda *args: "{}")
    # A real (empty) pcap: the report makes a pcapng of it with the key log embedded.
    pcap = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
    result = types.SimpleNamespace(name="tls", pcap=pcap, keylog="CLIENT_RANDOM ab cd")

    def action(folder):
        report.write_report([result], _dry(folder) / "report")
    assert _every_line(tmp_path, action) > 0


@pytest.mark.parametrize("shield", [True, False])
def test_the_harness_finds_the_window_it_was_written_for(tmp_path, monkeypatch, shield):
    """Without the shield the old window is found: the test above can fail."""
    if not shield:
        def unshielded(data, dest, mode=files.PRIVATE, error=files.LabError):
            files.install(files.write_partial(data, dest, mode), dest, mode, error)
        monkeypatch.setattr(files, "write_whole", unshielded)

    def action(folder):
        files.write_whole(b"secret", _dry(folder) / "tls.keylog")
    if shield:
        _every_line(tmp_path, action)
    else:
        with pytest.raises(AssertionError, match="left"):
            _every_line(tmp_path, action)
