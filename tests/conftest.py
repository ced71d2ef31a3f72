"""Shared test plumbing: running labctl as a user would, and a session lab.

Integration tests drive the real lab: the real compose file, real containers,
real packets. Each test session uses its own compose project name and its own
certificates folder, and always takes its labs down again.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def labctl(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> Result:
    """Run `python -m labctl ARGS` in a subprocess, exactly as a user's shell would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def assert_one_line_error(result: Result, pattern: str | None = None) -> None:
    """A failure a user sees: non-zero exit, one `labctl: error:` line, no traceback."""
    import re

    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("labctl: error:")]
    assert len(errors) == 1, result.stderr
    if pattern:
        assert re.search(pattern, errors[0]), errors[0]


@dataclass
class LabHandle:
    project: str
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600) -> Result:
        return labctl("--project", self.project, *args, env=self.env, timeout=timeout)

    def lab(self):
        from labctl.lab import Lab

        return Lab(project=self.project, certs_dir=Path(self.env["LAB_CERTS_DIR"]))


def start_lab(tmp: Path, prefix: str = "t") -> LabHandle:
    handle = LabHandle(unique(prefix), {"LAB_CERTS_DIR": str(tmp / "certs")})
    result = handle.run("up", "--json")
    if result.returncode != 0:
        handle.run("down", "--volumes")
        pytest.fail(f"labctl up failed: {result.stderr}")
    return handle


@contextlib.contextmanager
def running_lab(tmp: Path, prefix: str = "t") -> Iterator[LabHandle]:
    """A lab of its own (start_lab), taken down with its volumes however the block ends."""
    handle = start_lab(tmp, prefix)
    try:
        yield handle
    finally:
        handle.run("down", "--volumes")


@pytest.fixture(scope="session")
def session_lab(tmp_path_factory: pytest.TempPathFactory):
    """One lab for the whole session, on its own project name; always taken down."""
    with running_lab(tmp_path_factory.mktemp("session-lab")) as handle:
        yield handle
