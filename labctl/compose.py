"""The only place that runs Docker Compose: always an argument list, never a shell string.

Users mostly have Compose v2 (`docker compose`); Debian's machines have v1
(`docker-compose` 1.29). We use v2 when it answers and fall back to v1
(LAB_COMPOSE=v1 or v2 insists on one), and compose.yaml stays within what
both accept. Every run goes to the engine labctl resolved (labctl/engine.py).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .engine import Engine
from .errors import ComposeError, DockerUnavailable, UsageError

CHOICES = ("auto", "v2", "v1")


@dataclass(frozen=True)
class ComposeTool:
    command: tuple[str, ...]
    version: int   # 2 for the docker CLI plugin, 1 for docker-compose

    @property
    def label(self) -> str:
        return " ".join(self.command) + f" (v{self.version})"


def find_tool(path: str | None = None) -> ComposeTool:
    """Find `docker compose` (v2) or else `docker-compose` (v1) on PATH.

    LAB_COMPOSE=v2 or v1 takes only that one (auto, the default, prefers v2).
    Raises DockerUnavailable when the wanted one is not installed.
    """
    return _find_tool(check_choice(), path)


def check_choice() -> str:
    """LAB_COMPOSE's value (auto when unset or empty); UsageError if it is not a known choice."""
    choice = os.environ.get("LAB_COMPOSE", "auto") or "auto"
    if choice not in CHOICES:
        raise UsageError(f"LAB_COMPOSE={choice!r} is not one of: {', '.join(CHOICES)}")
    return choice


@functools.lru_cache(maxsize=None)
def _find_tool(choice: str, path: str | None) -> ComposeTool:
    if choice in ("auto", "v2"):
        docker = shutil.which("docker", path=path)
        if docker:
            # Asked of the local CLI alone: a DOCKER_CONTEXT it cannot find would fail the probe.
            env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONTEXT", "DOCKER_HOST")}
            probe = subprocess.run([docker, "compose", "version", "--short"], capture_output=True,
                                   text=True, stdin=subprocess.DEVNULL, env=env)
            if probe.returncode == 0:
                return ComposeTool((docker, "compose"), 2)
        if choice == "v2":
            plugins = os.path.join(os.environ.get("DOCKER_CONFIG") or "~/.docker", "cli-plugins", "docker-compose")
            raise DockerUnavailable(f"LAB_COMPOSE=v2 but `docker compose` does not answer — install the "
                                    f"Compose plugin ({plugins}) or unset LAB_COMPOSE")
    legacy = shutil.which("docker-compose", path=path)
    if legacy:
        return ComposeTool((legacy,), 1)
    if choice == "v1":
        raise DockerUnavailable("LAB_COMPOSE=v1 but `docker-compose` is not on PATH — install it "
                                "(apt-get install docker-compose) or unset LAB_COMPOSE")
    raise DockerUnavailable("neither `docker compose` (v2) nor `docker-compose` (v1) is installed — "
                            "install the Docker Compose plugin (or Debian's docker-compose)")


@dataclass(frozen=True)
class Compose:
    """One compose project: the file, the project name, its variables and its engine."""

    file: Path
    project: str
    env: Mapping[str, str]
    engine: Engine

    def argv(self, *args: str) -> list[str]:
        tool = find_tool()
        return [*tool.command, "--project-name", self.project, "--file", str(self.file), *args]

    def run(self, *args: str, capture: bool = True, check: bool = True,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run one compose command; raise ComposeError with its last lines if it fails.

        Compose runs in a session of its own: a Ctrl-C at the terminal (sent
        to the whole foreground process group) reaches labctl only, which
        decides: `up` lets compose finish and then undoes it, anything else
        stops compose (SIGTERM, then SIGKILL after 10 s) on its way out.
        """
        env = self._environ()
        pipe = subprocess.PIPE if capture else None
        with subprocess.Popen(self.argv(*args), env=env, text=True, stdin=subprocess.DEVNULL, stdout=pipe,
                              stderr=pipe, cwd=self.file.parent, start_new_session=True) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop(proc)
                raise ComposeError(f"`compose {' '.join(args)}` did not finish within {timeout:.0f} s") from None
            except BaseException:
                _stop(proc)
                raise
        result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        if check and result.returncode != 0:
            tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:] if capture else []
            detail = " / ".join(line.strip() for line in tail) or f"exit status {result.returncode}"
            raise ComposeError(f"`compose {' '.join(args[:2])}` failed: {detail}")
        return result

    def stream(self, *args: str) -> int:
        """Run a compose command attached to the terminal (logs -f, build output)."""
        return subprocess.call(self.argv(*args), env=self._environ(), cwd=self.file.parent)

    def _environ(self) -> dict[str, str]:
        env = {**self.engine.subprocess_env(), **self.env}
        env.pop("COMPOSE_PROJECT_NAME", None)   # --project-name is the one source of truth
        env.pop("COMPOSE_FILE", None)           # and --file the one compose file
        return env


def _stop(proc: subprocess.Popen) -> None:
    """End a compose process labctl gave up on: politely, then not."""
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
