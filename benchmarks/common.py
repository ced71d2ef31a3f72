"""What the benchmark scripts share: the repository root on sys.path, and timing one labctl command."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def labctl(project: str, env: dict[str, str], *args: str) -> float:
    """Run `labctl -q --project PROJECT ARGS` as a user would; return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "labctl", "-q", "--project", project, *args], cwd=ROOT,
                   env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_it(func: Callable[[], object], repeat: int) -> float:
    """The median wall time of REPEAT calls of FUNC, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
