"""The only place that runs Docker Compose: always an argument list, never a shell string.

Users mostly have Compose v2 (`docker compose`); Debian's machines have v1
(`docker-compose` 1.29). We use v2 when it answers and fall back to v1, and
compose.yaml stays within what both accept.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import ComposeError, DockerUnavailable


@dataclass(frozen=True)
class ComposeTool:
    command: tuple[str, ...]
    version: int   # 2 for the docker CLI plugin, 1 for docker-compose

    @property
    def label(self) -> str:
        return " ".join(self.command) + f" (v{self.version})"


@functools.lru_cache(maxsize=None)
def find_tool(path: str | None = None) -> ComposeTool:
    """Find `docker compose` (v2) or else `docker-compose` (v1) on PATH."""
    docker = shutil.which("docker", path=path)
    if docker:
        probe = subprocess.run([docker, "compose", "version", "--short"], capture_output=True,
                               text=True, stdin=subprocess.DEVNULL)
        if probe.returncode == 0:
            return ComposeTool((docker, "compose"), 2)
    legacy = shutil.which("docker-compose", path=path)
    if legacy:
        return ComposeTool((legacy,), 1)
    raise DockerUnavailable("neither `docker compose` (v2) nor `docker-compose` (v1) is installed — "
                            "install the Docker Compose plugin (or Debian's docker-compose)")


@dataclass(frozen=True)
class Compose:
    """One compose project: the file, the project name and its variables."""

    file: Path
    project: str
    env: Mapping[str, str]

    def argv(self, *args: str) -> list[str]:
        tool = find_tool()
        return [*tool.command, "--project-name", self.project, "--file", str(self.file), *args]

    def run(self, *args: str, capture: bool = True, check: bool = True,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run one compose command; raise ComposeError with its last lines if it fails."""
        env = {**os.environ, **self.env}
        env.pop("COMPOSE_PROJECT_NAME", None)   # --project-name is the one source of truth
        try:
            result = subprocess.run(self.argv(*args), env=env, text=True, stdin=subprocess.DEVNULL,
                                    capture_output=capture, timeout=timeout,
                                    cwd=self.file.parent)
        except subprocess.TimeoutExpired:
            raise ComposeError(f"`compose {' '.join(args)}` did not finish within {timeout:.0f} s") from None
        if check and result.returncode != 0:
            tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:] if capture else []
            detail = " / ".join(line.strip() for line in tail) or f"exit status {result.returncode}"
            raise ComposeError(f"`compose {' '.join(args[:2])}` failed: {detail}")
        return result

    def stream(self, *args: str) -> int:
        """Run a compose command attached to the terminal (logs -f, build output)."""
        env = {**os.environ, **self.env}
        env.pop("COMPOSE_PROJECT_NAME", None)
        return subprocess.call(self.argv(*args), env=env, cwd=self.file.parent)

