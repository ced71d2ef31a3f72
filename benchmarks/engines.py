#!/usr/bin/env python3
"""Benchmark: `labctl up` on each kind of engine, measured in one run.

Prints, for each engine:

  local       the engine labctl finds by default (this machine's)
  remote      an engine in a container that shares no folder with labctl,
              reached through DOCKER_HOST=tcp://127.0.0.1:PORT
              (tests/remote_engine.py): the certificates go through the API
  registry    the local engine again, but the base image made through the
              pull path: a slim Debian pulled from a registry on 127.0.0.1
              (tests/registry.py) and services/base/Dockerfile

  first up    the first `labctl up` there: base image, service images, certificates
              volumes, containers, health (the base is already present locally)
  warm up     `labctl up` of a lab that is down, images present (median of --repeat)
  run tls     `labctl run tls` (median of --repeat)

    python3 benchmarks/engines.py [--repeat 3] [--json] [--skip-remote] [--skip-registry]

Each engine gets its own project and image prefix; everything made here is
removed at the end (the engine's container and volume, the registry, the
images with this run's prefix).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import docker

from common import labctl  # noqa: E402  (benchmarks/common.py puts the repository on sys.path)

from tests.registry import local_registry, remove_image, slim_debian  # noqa: E402
from tests.remote_engine import running_engine  # noqa: E402


def measure(name: str, env: dict[str, str], repeat: int, first_args: tuple[str, ...] = ()) -> dict[str, float]:
    """first up, warm up and run tls on one engine; always `down --volumes` at the end."""
    project = f"bench{name}{uuid.uuid4().hex[:6]}"
    figures: dict[str, float] = {}
    try:
        figures["first_up"] = labctl(project, env, "up", *first_args)
        tls = [labctl(project, env, "run", "tls") for _ in range(repeat)]
        warm = []
        for _ in range(repeat):
            labctl(project, env, "down")
            warm.append(labctl(project, env, "up"))
        figures["warm_up"] = statistics.median(warm)
        figures["run_tls"] = statistics.median(tls)
    finally:
        labctl(project, env, "down", "--volumes")
    return figures


def remove_prefix(client: docker.DockerClient, prefix: str) -> None:
    for image in client.images.list():
        if any(tag.startswith(prefix) for tag in image.tags):
            client.images.remove(image.id, force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per median (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--skip-remote", action="store_true", help="no engine in a container")
    parser.add_argument("--skip-registry", action="store_true", help="no pull path through a local registry")
    args = parser.parse_args()
    client = docker.from_env()
    progress = (lambda m: None) if args.json else (lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="tlslab-bench-engines-") as tmp:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "LAB_"))}
        base_env["LAB_CERTS_DIR"] = str(Path(tmp) / "certs")
        progress("local engine")
        results["local"] = measure("local", base_env, args.repeat)
        if not args.skip_remote:
            with running_engine(client, progress=progress) as engine:
                progress(f"engine in a container at {engine.url}")
                results["remote"] = measure("remote", {**base_env, "DOCKER_HOST": engine.url}, args.repeat)
        if not args.skip_registry:
            prefix = f"tlslabbench{uuid.uuid4().hex[:6]}"
            with local_registry(Path(tmp) / "registry") as address:
                ref = f"{address}/debian:bookworm-slim"
                slim_debian(client, ref, progress=progress)
                try:
                    progress(f"registry path from {ref}")
                    results["registry"] = measure("registry", {**base_env, "LAB_IMAGE_PREFIX": prefix}, args.repeat,
                                                  ("--base-source", "pull", "--pull-from", ref))
                finally:
                    remove_prefix(client, prefix)
                    remove_image(client, ref)
    if args.json:
        print(json.dumps({"schema": "tlslab.bench.engines/1", "repeat": args.repeat, "seconds": results}, indent=2))
    else:
        print(f"{'engine':<10} {'first up':>9} {'warm up':>8} {'run tls':>8}   (seconds; warm/tls: median of {args.repeat})")
        for name, f in results.items():
            print(f"{name:<10} {f['first_up']:>9.1f} {f['warm_up']:>8.2f} {f['run_tls']:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
