"""Images with or without a registry.

Every service image is built FROM one base image (a build arg). The base is
found in this order:

1. already present locally (tagged by a hash of its recipe, so a change to
   the package list makes a new one);
2. pulled: `debian:bookworm-slim` (or any reference given with `--pull-from` /
   LAB_PULL_FROM, such as a class's own registry) plus the packages, via
   services/base/Dockerfile;
3. built offline from Debian packages: mmdebstrap writes a root filesystem
   tarball and `docker import` turns it into an image (no registry needed;
   this is what machines without one, like CI here, use).

Service images are tagged by a hash of their build context and the base
image, so `labctl up` rebuilds exactly what changed and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import docker
import docker.errors
import docker.utils

from .errors import DockerUnavailable, ImageError, UsageError
from .home import cache_dir

SUITE = "bookworm"
PULL_BASE = "debian:bookworm-slim"
# What every lab container needs: Python's ssl and http.server, tcpdump and
# iptables for the wire, iproute2 for routes, dnsmasq for the resolver.
# curl and openssl are there for `labctl run verify --client-cmd`: real
# third-party TLS clients graded against the same cases (curl also speaks
# HTTP/2 for the client's DNS-over-HTTPS queries). nginx is the reverse proxy
# that terminates TLS (services/proxy); unbound serves DNS over TLS and over
# HTTPS beside dnsmasq (services/dns). One base for all: a package is stored
# once however many services use it.
PACKAGES = ("python3-minimal", "libpython3.11-stdlib", "tcpdump", "iproute2", "iptables",
            "dnsmasq-base", "ca-certificates", "curl", "openssl", "nginx", "unbound")
# Documentation and translations are a third of the image and never read here.
EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")
# Run as root inside the new root filesystem, in both ways of making the base.
# "lab" (uid 10001) is the unprivileged user the client and server run as;
# /captures belongs to tcpdump, which drops to that user after opening eth0.
SETUP = ("useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent "
         "--shell /usr/sbin/nologin lab && mkdir -p /captures /app "
         "&& chown tcpdump:tcpdump /captures && chmod 0750 /captures")
SOURCES = ("auto", "pull", "local")
# [registry[:port]/]path[:tag][@sha256:digest], as `docker pull` takes it: the
# registry host may have capitals, the path may not (distribution's reference grammar).
REFERENCE_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]+)?/)?"
                          r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
                          r"(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")

# How a long step reports what it is doing: one line at a time (the CLI prints it on stderr).
Progress = Callable[[str], None]


def recipe_hash() -> str:
    text = "\n".join([SUITE, *PACKAGES, *EXCLUDES, SETUP])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def base_image_name(prefix: str) -> str:
    return f"{prefix}-base:{SUITE}-{recipe_hash()}"


def copied_sources(dockerfile: Path) -> list[str]:
    """The build-context paths a Dockerfile's COPY lines name (relative to services/), in order.

    A service may copy another's file (the proxy runs server/server.py on its
    loopback): a change there must rebuild it too.
    """
    sources: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def context_hash(services_dir: Path, service: str, base_id: str) -> str:
    """Hash of what goes into one service image: its folder, the shared base/ folder, any other
    file its Dockerfile copies (copied_sources), the base."""
    digest = hashlib.sha256(base_id.encode())
    paths: set[Path] = set()
    for folder in (services_dir / "base", services_dir / service):
        paths |= {path for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts}
    dockerfile = services_dir / service / "Dockerfile"
    if dockerfile.is_file():
        paths |= {services_dir / source for source in copied_sources(dockerfile)
                  if (services_dir / source).is_file()}
    for path in sorted(paths):
        digest.update(str(path.relative_to(services_dir)).encode())
        digest.update(b"\0%o\0" % (path.stat().st_mode & 0o777))
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class ServiceImage:
    service: str
    name: str
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"


def service_images(services_dir: Path, services: Sequence[str], prefix: str, base_id: str) -> list[ServiceImage]:
    """The image each of SERVICES (the lab's, lab.SERVICES) should run, tagged by its build context."""
    return [ServiceImage(s, f"{prefix}-{s}", context_hash(services_dir, s, base_id)) for s in services]


def prune_stale(client: docker.DockerClient, wanted: list[ServiceImage]) -> list[str]:
    """Remove older builds of the service images (other tags, no container using them)."""
    keep = {img.ref for img in wanted}
    names = {img.name for img in wanted}
    removed = []
    for image in client.images.list():
        for tag in image.tags:
            name = tag.rsplit(":", 1)[0]
            if name in names and tag not in keep:
                try:
                    client.images.remove(tag)
                    removed.append(tag)
                except docker.errors.APIError:
                    pass   # still used by a container (another lab); leave it
    return removed


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


@contextlib.contextmanager
def build_lock(name: str, progress: Progress | None = None) -> Iterator[None]:
    """Build image ``name`` alone: one image build at a time per machine and user, even across
    parallel labs. One lock file for all (a file per image name piled up, one per test prefix);
    builds are rare, and two at once would only share the same two cores."""
    with open(cache_dir() / "image-builds.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                progress(f"waiting for another labctl's image build to finish before {name}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_base(client: docker.DockerClient, prefix: str, services_dir: Path,
                source: str = "auto", progress: Progress = print,
                pull_from: str = PULL_BASE) -> tuple[str, str]:
    """Return (name, how) of the base image, building it if it is missing.

    ``pull_from`` is the image reference the pull path starts from (only read
    when the base has to be made and ``source`` is auto or pull).
    Raises ImageError (or DockerUnavailable when mmdebstrap is needed and missing).
    """
    name = base_image_name(prefix)
    if image_exists(client, name):
        return name, "present"
    with build_lock(name, progress):
        if image_exists(client, name):       # another labctl built it while we waited
            return name, "present"
        pull_error = ""
        if source in ("auto", "pull"):
            try:
                _base_from_pull(client, name, services_dir, progress, pull_from)
                return name, f"built from {pull_from}"
            except ImageError as exc:
                if source == "pull":
                    raise
                pull_error = str(exc)
                progress(f"no registry: {pull_error}; building from Debian packages instead")
        _base_from_packages(client, name, progress, pull_error)
        return name, "built from Debian packages (mmdebstrap)"


def check_reference(ref: str) -> str:
    """An image reference as `docker pull` takes it (registry[:port]/path[:tag]); UsageError if not."""
    if len(ref) > 255 or not REFERENCE_RE.fullmatch(ref):       # 255: the registry's limit on a name
        raise UsageError(f"{ref!r} is not an image reference: [registry[:port]/]name[:tag], the name in "
                         "lower case, e.g. debian:bookworm-slim or registry.example:5000/debian:bookworm-slim")
    return ref


def _base_from_pull(client: docker.DockerClient, name: str, services_dir: Path,
                    progress: Progress, pull_from: str) -> None:
    # "127.0.0.1:5000/debian:bookworm-slim": the last colon after the last
    # slash separates the tag; the SDK's own parser knows the rules.
    repo, tag = docker.utils.parse_repository_tag(pull_from)
    progress(f"pulling {pull_from}")
    try:
        client.images.pull(repo, tag=tag or "latest")
    except docker.errors.APIError as exc:
        raise ImageError(f"cannot pull {pull_from} ({_pull_failure(str(exc.explanation or exc))})") from None
    progress(f"pulled {pull_from}; installing {len(PACKAGES)} packages (services/base/Dockerfile)")
    try:
        client.images.build(path=str(services_dir / "base"), tag=name, rm=True, forcerm=True,
                            buildargs={"FROM_IMAGE": pull_from, "PACKAGES": " ".join(PACKAGES),
                                       "SETUP": SETUP},
                            labels={"tlslab.recipe": recipe_hash()})
    except docker.errors.BuildError as exc:
        tail = [str(chunk.get("stream", "")).strip() for chunk in exc.build_log if chunk.get("stream")]
        detail = " / ".join(line for line in tail[-3:] if line) or str(exc)
        raise ImageError(f"building {name} from {pull_from} failed: {exc.msg} ({detail[:200]})") from None
    except docker.errors.APIError as exc:
        raise ImageError(f"building {name} from {pull_from} failed: {exc.explanation or exc}") from None


def _pull_failure(detail: str) -> str:
    """The engine's pull error, said the way a student can act on it."""
    if "server gave HTTP response to HTTPS client" in detail:
        return ("the registry speaks plain HTTP: list it under insecure-registries in the engine's "
                "/etc/docker/daemon.json, or serve it over TLS")
    if "no such host" in detail:
        host = re.search(r"lookup (\S+?)(?: on \S+)?: no such host", detail)
        return f"no registry reachable: cannot resolve {host.group(1) if host else 'its host name'}"
    if "connection refused" in detail:
        return "no registry reachable: connection refused"
    if "dial tcp" in detail or "i/o timeout" in detail:
        return "no registry reachable"
    return detail[:160]


def _base_from_packages(client: docker.DockerClient, name: str, progress: Progress,
                        pull_error: str) -> None:
    if not shutil.which("mmdebstrap"):
        why = f"{pull_error} and " if pull_error else ""
        raise DockerUnavailable(f"no base image: {why}mmdebstrap is not installed — "
                                "install it (apt-get install mmdebstrap) or make a registry reachable")
    started = time.monotonic()
    progress(f"mmdebstrap {SUITE} with {len(PACKAGES)} packages (about 40 s)")
    rootfs_image(client, name, variant="essential", packages=PACKAGES, excludes=EXCLUDES,
                 customize=SETUP, changes=(f"LABEL tlslab.recipe={recipe_hash()}",), progress=progress)
    progress(f"base image {name} ready in {time.monotonic() - started:.0f} s")


def rootfs_image(client: docker.DockerClient, name: str, *, variant: str, packages: tuple[str, ...] = (),
                 excludes: tuple[str, ...] = (), customize: str = "", changes: tuple[str, ...] = (),
                 suite: str = SUITE, progress: Progress = print) -> None:
    """Make image ``name`` (repository:tag) from Debian packages, with no registry.

    mmdebstrap writes a root filesystem tarball (``variant``: essential,
    minbase, apt...; ``packages`` added; paths matching ``excludes`` never
    unpacked; ``customize`` a shell command run inside the new root as root),
    then `docker import` sends it through the API, so it works on a remote
    engine too; ``changes`` are Dockerfile instructions for the import (LABEL,
    ENV, CMD). mmdebstrap's default mirror is used. Raises DockerUnavailable
    without mmdebstrap and ImageError when a step fails.
    """
    mmdebstrap = shutil.which("mmdebstrap")
    if not mmdebstrap:
        raise DockerUnavailable("mmdebstrap is not installed — apt-get install mmdebstrap")
    with tempfile.TemporaryDirectory(prefix="tlslab-rootfs-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        argv = [mmdebstrap, f"--variant={variant}",
                *(["--include=" + ",".join(packages)] if packages else []),
                *[f"--dpkgopt=path-exclude={pattern}" for pattern in excludes],
                *([f'--customize-hook=chroot "$1" sh -c "{customize}"'] if customize else []),
                suite, str(tarball)]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        tail: list[str] = []
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                tail = (tail + [line.rstrip()])[-5:]
                if line.startswith("I: ") and "ing " in line:
                    progress(line[3:].strip())
        except BaseException:
            # Ctrl-C reaches mmdebstrap too; it then unmounts /proc, /sys and /dev
            # in its chroot and removes it. Leaving before it is done left ~250 MB
            # folders with those still mounted.
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        if proc.wait() != 0:
            raise ImageError(f"mmdebstrap failed: {' / '.join(tail[-3:])}")
        repository, tag = docker.utils.parse_repository_tag(name)
        progress(f"importing the root filesystem ({tarball.stat().st_size / 1e6:.0f} MB) as {name}")
        try:
            client.api.import_image_from_file(str(tarball), repository=repository, tag=tag or "latest",
                                              changes=list(changes))
        except docker.errors.APIError as exc:
            raise ImageError(f"docker import of {name} failed: {exc.explanation or exc}") from None
    if not image_exists(client, name):
        raise ImageError(f"docker import reported success but {name} is not there")
