#!/usr/bin/env python3
"""Benchmark: how long the lab takes to come up and go down, and labctl's overhead.

Prints, from one run on this machine:

  cold up      `labctl up` with no base image, no service images, no certs
  warm up      `labctl up` from a lab that is down (images and certs present)
  no-op up     `labctl up` on a lab that is already up
  down         `labctl down`
  raw compose  `<compose> up -d` of the same file with the same variables,
               plus a plain poll until every container's health check passes

and the ratio warm up / raw compose, measured side by side in this run
(median of --repeat runs each). Targets on 2 cores: warm up <= 5 s and
<= 2x raw compose; cold up <= 120 s including the base image.

    python3 benchmarks/up.py [--repeat 5] [--skip-cold] [--json]

It uses its own project names and image prefix for the cold run, and
removes every container, network, volume and image it created.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker

from common import labctl  # noqa: E402  (benchmarks/common.py puts the repository on sys.path)

from labctl import bringup, images, volumes  # noqa: E402
from labctl.compose import find_tool  # noqa: E402
from labctl.lab import SERVICES, Lab  # noqa: E402


def raw_compose_up(project: str, env: dict[str, str], client: docker.DockerClient) -> float:
    """The floor: compose up -d of the same file, then wait for health by polling."""
    lab = Lab(project=project, certs_dir=Path(env["LAB_CERTS_DIR"]))
    base = images.base_image_name(lab.image_prefix)
    tags, built = bringup.ensure_images(lab, base, progress=lambda _: None)
    assert not built, "the images should exist before the raw compose run"
    # The certificate volumes are labctl's to fill (compose would start the
    # server with empty ones); filled before the clock starts.
    volumes.fill(lab.docker, project, lab.certs_dir, base)
    compose = lab.compose(tags, base)
    started = time.perf_counter()
    compose.run("up", "--detach", "--no-build")
    label = {"label": f"com.docker.compose.project={project}"}
    # The same readiness rule labctl uses: Docker's health, or, until Docker's
    # first check (every 10 s), the container's own health command run once.
    deadline = started + 60
    ready: set[str] = set()
    while True:
        for c in client.containers.list(filters=label):
            if c.name in ready:
                continue
            health = c.attrs["State"].get("Health", {}).get("Status")
            test = c.attrs["Config"]["Healthcheck"]["Test"]
            argv = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
            if health == "healthy" or c.exec_run(argv).exit_code == 0:
                ready.add(c.name)
        if len(ready) == len(SERVICES):
            break
        if time.perf_counter() > deadline:
            raise SystemExit(f"raw compose: not healthy after 60 s: {sorted(ready)} ready")
        time.sleep(0.1)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per warm figure (median is shown)")
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold run (about 75 s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    client = docker.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="tlslab-bench-"))
    env = {"LAB_CERTS_DIR": str(tmp / "certs")}
    project = f"bench{uuid.uuid4().hex[:6]}"
    figures: dict[str, float | str] = {}
    try:
        if not args.skip_cold:
            prefix = f"tlslabbench{uuid.uuid4().hex[:6]}"
            cold_env = {"LAB_CERTS_DIR": str(tmp / "cold-certs"), "LAB_IMAGE_PREFIX": prefix}
            try:
                figures["cold_up_s"] = labctl(f"{project}c", cold_env, "up")
            finally:
                labctl(f"{project}c", cold_env, "down", "--volumes")
                for image in client.images.list():
                    if any(t.startswith(prefix) for t in image.tags):
                        client.images.remove(image.id, force=True)

        labctl(project, env, "up")            # images and certs for the warm runs
        labctl(project, env, "down")
        warm, noop, down, raw = [], [], [], []
        for _ in range(args.repeat):
            warm.append(labctl(project, env, "up"))
            noop.append(labctl(project, env, "up"))
            down.append(labctl(project, env, "down"))
            raw.append(raw_compose_up(project, env, client))
            labctl(project, env, "down")
        figures.update(warm_up_s=statistics.median(warm), noop_up_s=statistics.median(noop),
                       down_s=statistics.median(down), raw_compose_up_s=statistics.median(raw))
        figures["warm_over_raw"] = figures["warm_up_s"] / figures["raw_compose_up_s"]
    finally:
        labctl(project, env, "down", "--volumes")

    figures["machine"] = f"{platform.node()} {os.cpu_count()} cores, {platform.platform()}"
    figures["compose"] = find_tool().label
    figures["repeat"] = str(args.repeat)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"lab up/down on {figures['machine']} with {figures['compose']} (median of {args.repeat})")
    rows = [("cold up (no images, no certs)", "cold_up_s", "<= 120 s"),
            ("warm up (lab down)", "warm_up_s", "<= 5 s"),
            ("no-op up (lab up)", "noop_up_s", ""),
            ("down", "down_s", ""),
            ("raw compose up -d + health", "raw_compose_up_s", "")]
    for label, key, target in rows:
        if key in figures:
            print(f"  {label:.<34} {figures[key]:6.2f} s   {target}")
    print(f"  {'warm up / raw compose':.<34} {figures['warm_over_raw']:6.2f} x   <= 2 x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
