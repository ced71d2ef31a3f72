"""Bringing a lab up and taking it down: certificates, images, volumes, containers, health.

labctl.lab names a lab and looks at it (its project, network, addresses,
containers and their states); this module changes what exists: it is the only
place that runs `compose up`, `build`, `restart` and `down`. Every step is
bounded by the lab's one timeout setting (``lab.timeout``), and an `up`
interrupted while making a new lab removes what it made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import certs, images, volumes
from .compose import find_tool
from .errors import ComposeError, NotHealthy, ServiceFailed
from .images import Progress
from .interrupts import shielded
from .lab import SERVICES, Lab, ServiceState
from .waiting import NotReady, wait_for


@dataclass
class UpReport:
    project: str
    net: str
    engine: dict[str, str] = field(default_factory=dict)     # host and source, as status --json
    steps: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    services: list[ServiceState] = field(default_factory=list)


def up(lab: Lab, progress: Progress) -> UpReport:
    """Certificates, images, containers, health: idempotent, each wait bounded by ``lab.timeout``.

    Interrupted (Ctrl-C, SIGTERM) while making a lab that was not there
    before (no container, no volume), it removes what it made: the
    containers, the network and the volumes (certificate volumes hold
    private keys). A lab is up, or it is not there. Images it finished
    building stay: they are shared, and the next `up` uses them.
    """
    label = {"label": f"com.docker.compose.project={lab.project}"}
    existed = bool(lab.containers()) or bool(lab.docker.volumes.list(filters=label))
    try:
        return _up(lab, progress)
    except KeyboardInterrupt:
        if not existed:
            with shielded():
                if lab.is_up() or lab.docker.volumes.list(filters=label):
                    progress(f"interrupted: removing what this `up` made of lab '{lab.project}'")
                    down(lab, volumes=True)
        raise


def _up(lab: Lab, progress: Progress) -> UpReport:
    started = time.monotonic()
    lab.forget_containers()
    report = UpReport(lab.project, "", {"host": lab.engine.host, "source": lab.engine.source})
    client = lab.docker

    def step(name: str, outcome: str) -> None:
        report.steps.append((name, outcome))
        progress(f"{name:.<24} {outcome}")

    how = certs.ensure(lab.certs_dir)
    certs.check(lab.certs_dir)
    step("lab files", f"{lab.home.files} (from {lab.home.files_from})")
    step("certificates", f"{how} in {lab.certs_dir}")

    base, how = images.ensure_base(client, lab.image_prefix, lab.home.services,
                                   lab.base_source, progress=lambda m: progress(f"  {m}"),
                                   pull_from=lab.pull_from)
    step("base image", f"{base} ({how})")
    tags, built = ensure_images(lab, base, progress)
    step("service images", f"built {', '.join(built)}" if built else "present")
    before = lab.containers()
    how = volumes.fill(client, lab.project, lab.certs_dir, base, containers=before)
    step("certificate volumes", f"{how} ({', '.join(volumes.MOUNTS)})")

    report.net = lab.net()
    # Held from Ctrl-C: compose killed half-way leaves containers created
    # and never started; let it finish (seconds), then up() undoes it.
    with shielded():
        try:
            lab.compose(tags, base).run("up", "--detach", "--no-build", "--remove-orphans", timeout=300)
        except ComposeError as exc:
            if "overlaps" not in str(exc):
                raise
            # Another lab took this subnet between our look and compose's
            # network create; pick again once, now that it is visibly taken.
            lab.forget_net()
            report.net = lab.net()
            lab.compose(tags, base).run("up", "--detach", "--no-build", "--remove-orphans", timeout=300)
    step("containers", f"{lab.project} on {report.net}.0/24")
    running = [s for s in KEY_READERS if before.get(s) is not None and before[s].status == "running"]
    if how == "filled" and running:
        # They kept the old keys in memory (certificates made anew since they started).
        _restart_key_readers(lab, running, progress)

    report.services = wait_healthy(lab)
    step("health", "all services healthy")
    report.seconds = time.monotonic() - started
    return report


def refresh_certs(lab: Lab, progress: Progress) -> None:
    """Refill the lab's certificate volumes from certs_dir (after `certs --force`), then
    restart the services that read their keys only at start (KEY_READERS)."""
    base = images.base_image_name(lab.image_prefix)
    if not images.image_exists(lab.docker, base):
        base, _ = images.ensure_base(lab.docker, lab.image_prefix, lab.home.services, lab.base_source,
                                     progress=lambda m: progress(f"  {m}"), pull_from=lab.pull_from)
    volumes.fill(lab.docker, lab.project, lab.certs_dir, base, force=True)
    running = [s for s in KEY_READERS if lab.service_state(s) == "running"]
    if running:
        _restart_key_readers(lab, running, progress)
        wait_healthy(lab)


# The services that read their keys once, at start: server.py, unbound (dns) and nginx (proxy).
# The wire's attacker reads its own at each attack, the client at each run.
KEY_READERS = ("server", "dns", "proxy")


def _restart_key_readers(lab: Lab, services: list[str], progress: Progress) -> None:
    """Restart SERVICES (of KEY_READERS) after their volumes were refilled, so they load the new keys."""
    progress(f"  restarting {', '.join(services)} so {'it loads' if len(services) == 1 else 'they load'} the new keys")
    lab.forget_containers()
    lab.compose().run("restart", "--timeout", "1", *services, timeout=120)


def ensure_images(lab: Lab, base: str, progress: Progress) -> tuple[dict[str, str], list[str]]:
    """Build the service images whose build context changed; return tags and what was built."""
    base_id = lab.docker.images.get(base).id
    assert base_id is not None, "an image the engine found has an id"
    wanted = images.service_images(lab.home.services, SERVICES, lab.image_prefix, base_id)
    tags = {img.service: img.tag for img in wanted}
    missing = [img for img in wanted if not images.image_exists(lab.docker, img.ref)]
    if missing:
        names = [img.service for img in missing]
        progress(f"  building {', '.join(names)} from {base}")
        # v1 builds one image at a time unless told; v2 builds in parallel anyway.
        parallel = ["--parallel"] if find_tool().version == 1 else []
        lab.compose(tags, base).run("build", *parallel, *names, timeout=900)
    for stale in images.prune_stale(lab.docker, wanted):
        progress(f"  removed the older build {stale}")
    return tags, [img.service for img in missing]


def wait_healthy(lab: Lab) -> list[ServiceState]:
    """Wait until every service is running and healthy (at most ``lab.timeout``); fail fast if one exits."""
    timeout = lab.timeout
    last: list[ServiceState] = []
    healthy: set[str] = set()

    def check() -> list[ServiceState]:
        nonlocal last
        last = lab.states(known_healthy=frozenset(healthy))
        healthy.update(s.service for s in last if s.state == "running" and s.health == "healthy")
        for s in last:
            if s.state in ("exited", "dead"):
                stopped = lab.containers().get(s.service)
                raise _unhealthy(lab, s, lab.describe_stop(stopped) if stopped is not None
                                 else f"exited with status {s.exit_code}")
            if s.health == "unhealthy":
                raise _unhealthy(lab, s, "unhealthy")
        waiting = [s.service for s in last if s.state != "running" or s.health not in ("healthy", "-")]
        if waiting:
            raise NotReady(f"waiting for {', '.join(waiting)}")
        return last

    try:
        return wait_for(check, what=f"lab '{lab.project}'", timeout=timeout, interval=0.1)
    except ServiceFailed:
        raise
    except NotHealthy:
        slow = next((s for s in last if s.state != "running" or s.health != "healthy"), None)
        if slow is None:
            raise
        raise _unhealthy(lab, slow, f"not healthy after {timeout:.0f} s (state {slow.state}, "
                                    f"health {slow.health})") from None


def _unhealthy(lab: Lab, s: ServiceState, why: str) -> NotHealthy:
    error = ServiceFailed(f"service '{s.service}' {why} — see `labctl logs {s.service}`")
    error.details = lab.log_tail(s.service, 10)
    return error


def down(lab: Lab, volumes: bool = False) -> bool:
    """Remove the lab's containers and network (and captures with volumes); False if nothing was up."""
    had_volume = volumes and bool(lab.docker.volumes.list(
        filters={"label": f"com.docker.compose.project={lab.project}"}))
    if not lab.is_up() and not had_volume:
        return False
    lab.forget_containers()
    flags = ["--timeout", "1", "--remove-orphans"]
    if volumes:
        flags.append("--volumes")
    lab.compose().run("down", *flags, timeout=120)
    for helper in lab.docker.containers.list(all=True, filters={"label": f"tlslab.project={lab.project}"}):
        helper.remove(force=True)      # a volume filler left by an interrupted `up`
    return True
