"""One lab: a compose project, its network, its addresses and its containers.

A lab is named by its compose project (`--project`, or LAB_PROJECT). Each lab
gets its own /24 inside 10.77.0.0/16 (the default lab takes 10.77.0.0/24),
so two labs run side by side without sharing a bridge, an address or a name.

This module looks at a lab and works inside it (exec, the states of its
services, why one stopped); making it exist and taking it away (certificates,
images, health, `compose up` and `down`) is labctl.bringup's.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network

from . import engine, images
from .compose import Compose
from .compose import check_choice as compose_choice
from .errors import LabError, UsageError
from .files import has_control
from .home import Home, find_home

DEFAULT_PROJECT = "tlslab"
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
LAB_RANGE = ipaddress.IPv4Network("10.77.0.0/16")
# Host part of each service's address; the wire sits at .254, the resolver at .53.
HOSTS = {"client": 10, "server": 20, "proxy": 30, "dns": 53, "wire": 254}
SERVICES = ("wire", "server", "dns", "proxy", "client")
# The one timeout setting (--timeout, LAB_TIMEOUT): how long any one step on
# the lab may take (a client exchange, a wire command, the services' health,
# a --client-cmd in verify). A loaded machine makes runs slow; it must not
# make them fail, so the default is generous and the error names the setting.
DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 86400.0
TIMEOUT_SETTING = "--timeout SECONDS or LAB_TIMEOUT"
# Processes labctl starts in the client container carry this variable, so
# an interrupted run's processes can be found and stopped (see kill_run_processes).
RUN_TAG = "TLSLAB_RUN"



def check_project(name: str) -> str:
    if not PROJECT_RE.fullmatch(name):     # match() would let "lab\n" through (`$` before a newline)
        raise UsageError(f"project name {name!r} must be 1-40 lowercase letters, digits, '-' or '_', "
                         "starting with a letter or digit")
    return name


def check_timeout(value: str | float, source: str = "--timeout") -> float:
    """Seconds, as a float in (0, MAX_TIMEOUT]; UsageError naming ``source`` otherwise."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{source} {value!r} is not a number of seconds") from None
    if not 0 < seconds <= MAX_TIMEOUT:        # also refuses nan; inf is > MAX_TIMEOUT
        raise UsageError(f"{source} {value!r} must be more than 0 and at most {MAX_TIMEOUT:.0f} seconds")
    return seconds


IMAGE_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


def check_image_prefix(prefix: str) -> str:
    """LAB_IMAGE_PREFIX: the start of every image name (PREFIX-base, PREFIX-wire...); UsageError if
    it cannot start one (Docker wants lower case, digits and '.', '_', '-')."""
    if not IMAGE_PREFIX_RE.fullmatch(prefix):
        raise UsageError(f"image prefix {prefix[:60]!r} (LAB_IMAGE_PREFIX) must be 1-63 lowercase letters, "
                         "digits, '.', '_' or '-', starting with a letter or digit")
    return prefix


def choose_net(project: str, taken: list[ipaddress.IPv4Network]) -> str:
    """Pick a free /24 in 10.77.0.0/16 for a new lab; return its first three octets.

    The default lab prefers 10.77.0.0/24 (the addresses in the README); other
    projects start at a slot derived from their name, so labs started at the
    same moment rarely race for the same subnet.
    """
    slots = list(LAB_RANGE.subnets(new_prefix=24))
    start = 0 if project == DEFAULT_PROJECT else zlib.crc32(project.encode()) % len(slots)
    for i in range(len(slots)):
        candidate = slots[(start + i) % len(slots)]
        if not any(candidate.overlaps(net) for net in taken):
            return str(candidate.network_address).rsplit(".", 1)[0]
    raise LabError("no free /24 left in 10.77.0.0/16 — `labctl down` some labs first")


@dataclass
class ServiceState:
    service: str
    role: str
    address: str
    state: str           # running, exited, created, ... or "absent"
    health: str          # healthy, starting, unhealthy, "-" when none
    container: str       # container name
    exit_code: int | None = None


class Lab:
    """A lab by its project name: its settings, where it runs (engine, network, addresses), what runs in it."""

    def __init__(self, project: str = DEFAULT_PROJECT, home: Home | None = None,
                 certs_dir: Path | None = None, image_prefix: str | None = None,
                 base_source: str | None = None, pull_from: str | None = None,
                 timeout: float | None = None) -> None:
        self.project = check_project(project)
        compose_choice()             # LAB_COMPOSE: every command refuses a bad one, not only those that run compose
        self.timeout = check_timeout(timeout) if timeout is not None else \
            check_timeout(os.environ.get("LAB_TIMEOUT") or DEFAULT_TIMEOUT, "LAB_TIMEOUT")
        self.home = home or find_home()
        self.engine = engine.resolve()
        self.certs_dir = check_certs_dir(certs_dir or Path(os.environ.get("LAB_CERTS_DIR")
                                                         or self.home.state / "certs"))
        # An option given empty is an error; an environment variable set empty counts as unset.
        self.image_prefix = check_image_prefix(
            image_prefix if image_prefix is not None else os.environ.get("LAB_IMAGE_PREFIX") or "tlslab")
        self.base_source = base_source if base_source is not None else os.environ.get("LAB_BASE_SOURCE") or "auto"
        if self.base_source not in images.SOURCES:
            raise UsageError(f"base image source {self.base_source!r} (--base-source or LAB_BASE_SOURCE) is not "
                             f"one of: {', '.join(images.SOURCES)}")
        self.pull_from = images.check_reference(
            pull_from if pull_from is not None else os.environ.get("LAB_PULL_FROM") or images.PULL_BASE)
        self._docker: docker.DockerClient | None = None
        self._net: str | None = None
        self._running: dict[str, Container] = {}
        self.run_tag: str | None = None      # set by runner.batch while a run's client processes may live
        self.turn_token: str | None = None   # set by turn.taken while this process holds the lab's turn

    # -- Docker and compose -------------------------------------------------

    @property
    def flag(self) -> str:
        """What a labctl command line needs to name this lab ("" for the default one)."""
        return "" if self.project == DEFAULT_PROJECT else f" --project {self.project}"

    @property
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = self.engine.client()
        return self._docker

    def compose(self, tags: dict[str, str] | None = None, base: str | None = None) -> Compose:
        env = {"LAB_NET": self.net(), "LAB_IMAGE_PREFIX": self.image_prefix}
        if base:
            env["LAB_BASE_IMAGE"] = base
        for service, tag in (tags or {}).items():
            env[f"LAB_{service.upper()}_TAG"] = tag
        return Compose(self.home.compose_file, self.project, env, self.engine)

    def network(self) -> Network | None:
        found = self.docker.networks.list(filters={"label": [f"com.docker.compose.project={self.project}",
                                                             "com.docker.compose.network=lab"]})
        return found[0] if found else None

    def net(self) -> str:
        """First three octets of this lab's /24: the existing network's, or a free one."""
        if self._net is None:
            existing = self.network()
            if existing is not None:
                subnet = existing.attrs["IPAM"]["Config"][0]["Subnet"]
                self._net = subnet.split("/")[0].rsplit(".", 1)[0]
            else:
                self._net = choose_net(self.project, self._taken_subnets())
        return self._net

    def forget_net(self) -> None:
        """Look for this lab's /24 again at the next net(): the one chosen was taken meanwhile."""
        self._net = None

    def _taken_subnets(self) -> list[ipaddress.IPv4Network]:
        taken = []
        for network in self.docker.networks.list():
            for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
                try:
                    net = ipaddress.ip_network(config.get("Subnet", ""), strict=False)
                except ValueError:
                    continue
                if isinstance(net, ipaddress.IPv4Network):
                    taken.append(net)
        return taken

    def address(self, service: str) -> str:
        return f"{self.net()}.{HOSTS[service]}"

    def mac(self, service: str) -> str | None:
        """The MAC address of SERVICE's interface on the lab network ("02:42:…", lowercase), as the
        engine assigned it (Docker derives it from the address, Podman picks one); None if not known."""
        networks = self.container(service).attrs.get("NetworkSettings", {}).get("Networks") or {}
        for settings in networks.values():
            if (settings or {}).get("IPAddress") == self.address(service) and settings.get("MacAddress"):
                return str(settings["MacAddress"]).lower()
        return None

    def containers(self) -> dict[str, Container]:
        found = self.docker.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={self.project}"})
        return {c.labels.get("com.docker.compose.service", c.name or ""): c for c in found}

    def container(self, service: str) -> Container:
        """The running container of a service (looked up once per Lab: every exec needs it)."""
        check_service(service)
        cached = self._running.get(service)
        if cached is not None:
            return cached
        found = self.containers().get(service)
        if found is None or found.status != "running":
            raise self.not_running(service, found)
        self._running[service] = found
        return found

    def forget_containers(self) -> None:
        """Look containers up again at the next exec: bringup is about to replace or remove them."""
        self._running.clear()

    def require_running(self) -> None:
        """Before a run: raise naming the first service that is not running, and why."""
        found = self.containers()
        for service in SERVICES:
            c = found.get(service)
            if c is None or c.status != "running":
                raise self.not_running(service, c)

    def not_running(self, service: str, c: Container | None) -> LabError:
        flag = self.flag
        if c is None:
            return LabError(f"service '{service}' of lab '{self.project}' is not running — start the lab "
                            f"with `labctl{flag} up`")
        if c.status == "created":
            return LabError(f"lab '{self.project}' was never started: its service '{service}' was created "
                            f"but not started (an interrupted `up`?) — `labctl{flag} up` starts it")
        return LabError(f"service '{service}' of lab '{self.project}' is not running "
                        f"({self.describe_stop(c)}) — `labctl{flag} up` brings the lab back; "
                        f"`labctl{flag} logs {service}` says more")

    def describe_stop(self, c: Container) -> str:
        """"exited with status 1: <the last line it printed>", "created, never started", ..."""
        state = c.attrs["State"]
        status = state.get("Status", "?")
        if status == "created":
            return "created, never started"
        if status not in ("exited", "dead"):
            return status
        text = f"exited with status {state.get('ExitCode')}"
        reason = self.last_words(c)
        return f"{text}: {reason}" if reason else text

    def last_words(self, c: Container) -> str:
        """The last line a stopped container printed: a service that fails at start says why there."""
        try:
            lines = c.logs(tail=5).decode(errors="replace").strip().splitlines()
        except docker.errors.APIError:
            return ""
        return lines[-1].strip()[:200] if lines else ""

    # -- state ----------------------------------------------------------------

    def states(self, probe: bool = True, known_healthy: frozenset[str] = frozenset()) -> list[ServiceState]:
        """Each service's state and health.

        Docker runs the health checks only every 10 s (more often cost a third
        of this 2-core machine's CPU with the lab idle). Until Docker's first
        check, its health says "starting"; then we run the same check ourselves
        (``probe``), so a freshly started lab is reported healthy as soon as
        it is.
        """
        found = self.containers()
        states = []
        for service in SERVICES:
            c = found.get(service)
            if c is None:
                states.append(ServiceState(service, "", "", "absent", "-", ""))
                continue
            state = c.attrs["State"]
            nets = c.attrs["NetworkSettings"]["Networks"] or {}
            address = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), "")
            health = (state.get("Health") or {}).get("Status", "-")
            if health == "starting" and state.get("Status") == "running":
                if service in known_healthy or (probe and self.probe(c)):
                    health = "healthy"
            states.append(ServiceState(
                service=service, role=c.labels.get("tlslab.role", ""), address=address,
                state=state.get("Status", "?"), health=health,
                container=c.name or "", exit_code=state.get("ExitCode") if state.get("Status") == "exited" else None))
        return states

    def probe(self, c: Container) -> bool:
        """Run the container's own health check command once, now."""
        test = ((c.attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
        if not test or test[0] == "NONE":
            return True
        argv = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        try:
            return c.exec_run(argv).exit_code == 0
        except docker.errors.APIError:
            return False

    def is_up(self) -> bool:
        return bool(self.containers()) or self.network() is not None

    def log_tail(self, service: str, lines: int) -> list[str]:
        c = self.containers().get(service)
        if c is None:
            return []
        try:
            text = c.logs(tail=lines).decode(errors="replace")
        except docker.errors.APIError:
            return []
        return [f"{service} | {line}" for line in text.splitlines()]

    # -- doing things inside ------------------------------------------------

    def exec(self, service: str, argv: list[str], user: str = "root",
             timeout: float | None = None, tagged: bool = True) -> tuple[int, str, str]:
        """Run argv in a service's container; return (status, stdout, stderr).

        Bounded by ``timeout`` seconds (default: the lab's one setting): the
        exec ends with status 124, or 137 when it had to be killed. In the
        client, while a run is on (``run_tag``), the process carries
        TLSLAB_RUN so kill_run_processes finds it and its children.
        """
        c = self.container(service)
        argv = ["timeout", "--kill-after=2", f"{timeout or self.timeout:g}", *argv]
        environment = {RUN_TAG: self.run_tag} if tagged and service == "client" and self.run_tag else None
        try:
            result = c.exec_run(argv, user=user, demux=True, environment=environment)
        except docker.errors.APIError as exc:
            # The container went away under us (killed, stopped, restarted).
            self._running.pop(service, None)
            raise self.broken(service, exc) from None
        status, (out, err) = result.exit_code, _demuxed(result.output)
        assert status is not None, "exec_run, neither detached nor streaming, returns once the exec has ended"
        if status >= 126 and not out:
            # 137 from a killed exec, 126/127 when the container is restarting:
            # say which service broke rather than "the client printed nothing".
            state = self.service_state(service)
            if state != "running":
                raise self.broken(service, None)
        return status, out.decode(errors="replace"), err.decode(errors="replace")

    def kill_run_processes(self, run: str = "") -> int:
        """Kill the client container's processes started for ``run`` (any run if empty); return how many.

        An exec goes on inside the container when labctl stops waiting for it
        (Ctrl-C, a timeout on this side): without this, an interrupted run's
        client would still be talking while the next run captures.

        It runs as "lab", the user every run's client process runs as: root in
        the client container has no CAP_SYS_PTRACE, so it may not read another
        user's /proc/PID/environ (nor, without CAP_KILL, signal it).
        """
        status, out, _ = self.exec("client", ["python3", "-c", _KILL_TAGGED, f"{RUN_TAG}={run}"],
                                     user="lab", tagged=False)
        return int(out.strip() or 0) if status == 0 and out.strip().isdigit() else 0

    def service_state(self, service: str) -> str:
        c = self.containers().get(service)
        return "absent" if c is None else c.attrs["State"].get("Status", "?")

    def broken(self, service: str, exc: Exception | None) -> LabError:
        c = self.containers().get(service)
        state = "absent" if c is None else self.describe_stop(c)
        why = f" ({exc.explanation})" if isinstance(exc, docker.errors.APIError) and exc.explanation else ""
        flag = self.flag
        return LabError(f"service '{service}' stopped during the run (now {state}){why} — "
                        f"`labctl{flag} up` brings the lab back")

    def check_running(self, since: datetime.datetime | None = None) -> None:
        """Raise naming the first service that is not running, or that (re)started after ``since``."""
        found = self.containers()
        for service, c in ((name, found.get(name)) for name in SERVICES):
            if c is None or c.attrs["State"].get("Status", "?") != "running":
                raise self.broken(service, None)
            if since is not None and _docker_time(c.attrs["State"].get("StartedAt", "")) > since:
                flag = self.flag
                raise LabError(f"service '{service}' restarted during the run, so its result cannot be "
                               f"trusted — run it again (`labctl{flag} status` shows the lab)")


# Runs inside the client as root: SIGKILL every process whose environment has
# an entry starting with argv[1] (TLSLAB_RUN=<run>), children included, since
# they inherit it. No procps in the image, so /proc is read directly.
_KILL_TAGGED = """
import os, signal, sys
tag, me, killed = sys.argv[1].encode(), os.getpid(), 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\\0")
    except OSError:
        continue
    if int(pid) != me and any(entry.startswith(tag) for entry in env):
        try:
            os.kill(int(pid), signal.SIGKILL)
            killed += 1
        except OSError:
            pass
print(killed)
"""


def _demuxed(output: object) -> tuple[bytes, bytes]:
    """What exec_run(demux=True) printed: (stdout, stderr), each b"" when there was none (the SDK
    gives None, or no pair at all; its type stubs describe only the undemuxed bytes)."""
    if isinstance(output, tuple) and len(output) == 2:
        out, err = output
        return (out if isinstance(out, bytes) else b"", err if isinstance(err, bytes) else b"")
    return b"", b""


def _docker_time(text: str) -> datetime.datetime:
    """Docker's RFC 3339 timestamps carry nanoseconds; Python reads microseconds."""
    try:
        stamp = datetime.datetime.fromisoformat(text.rstrip("Z")[:26]).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return stamp


def check_certs_dir(path: Path) -> Path:
    """The certificates folder, resolved; UsageError for a file or a folder whose parent is missing
    (a typo in LAB_CERTS_DIR must not quietly make a second CA somewhere else)."""
    try:
        return _check_certs_dir(path)
    except OSError as exc:               # a name too long, a loop of links, a parent we may not read
        raise UsageError(f"certificates folder {str(path)[:80]!r}: {exc.strerror} — check LAB_CERTS_DIR") from None


def _check_certs_dir(path: Path) -> Path:
    if has_control(str(path)):
        raise UsageError(f"certificates folder {str(path)[:80]!r} holds a control character (a newline?) — "
                         "check LAB_CERTS_DIR")
    path = path.expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"certificates folder {path} is a file, not a folder — check LAB_CERTS_DIR")
    if not path.exists() and not path.parent.is_dir():
        raise UsageError(f"certificates folder {path}: its parent {path.parent} does not exist — "
                         "create it, or check LAB_CERTS_DIR")
    return path


def check_service(service: str) -> str:
    if service not in SERVICES:
        raise UsageError(f"unknown service {service!r}; the lab's services are: {', '.join(SERVICES)}")
    return service
