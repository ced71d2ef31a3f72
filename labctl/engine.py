"""Which Docker engine: resolved once, the same for the SDK and for compose.

The Docker CLI and Compose read DOCKER_HOST, DOCKER_CONTEXT and the current
context in ~/.docker/config.json; the Docker SDK reads only DOCKER_HOST. Left
alone, `DOCKER_CONTEXT=teacher labctl up` would check images on the local
engine and start containers on the teacher's. So labctl resolves the engine
here, the way the Docker CLI does (cli/command/cli.go, resolveContextName:
DOCKER_HOST, then DOCKER_CONTEXT, then the config's current context), and
hands that one endpoint to both: the SDK as base_url, every subprocess
(compose, `docker exec` for `labctl shell`) as DOCKER_HOST with the context's
TLS files, and without DOCKER_CONTEXT.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import docker
import docker.errors
import docker.tls
import docker.utils

from .errors import DockerUnavailable

DEFAULT_HOST = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Engine:
    """One Docker endpoint and how it was chosen."""

    host: str                               # unix:///…, tcp://HOST:PORT or ssh://USER@HOST
    source: str                             # "DOCKER_HOST", "context 'x' from DOCKER_CONTEXT", …
    tls: docker.tls.TLSConfig | None = field(default=None, compare=False)
    cert_path: str | None = None            # the folder with ca.pem, cert.pem, key.pem
    tls_verify: bool = False

    @property
    def label(self) -> str:
        return f"{self.host} ({self.source})"

    def env(self) -> dict[str, str]:
        """The variables a docker or compose subprocess needs to reach this engine."""
        env = {"DOCKER_HOST": self.host}
        if self.cert_path:
            env["DOCKER_CERT_PATH"] = self.cert_path
            if self.tls_verify:
                env["DOCKER_TLS_VERIFY"] = "1"
        return env

    def subprocess_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default os.environ) pointed at this engine and at nothing else."""
        env = dict(os.environ if base is None else base)
        for name in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            env.pop(name, None)
        env.update(self.env())
        return env

    def client(self, timeout: int = 30) -> docker.DockerClient:
        """A Docker SDK client that has answered a ping, or DockerUnavailable saying why."""
        try:
            client = docker.DockerClient(base_url=self.host, tls=self.tls or False, timeout=timeout,
                                         use_ssh_client=self.host.startswith("ssh://"))
            client.ping()
            return client
        except docker.errors.DockerException as exc:
            raise DockerUnavailable(f"cannot reach the Docker daemon at {self.label} ({_reason(exc)}) — "
                                    "is it running? (`sudo systemctl start docker`, or check DOCKER_HOST "
                                    "and `docker context ls`)") from None


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "FileNotFoundError" in text or "No such file" in text:
        return "no daemon socket there"
    if "PermissionError" in text or "Permission denied" in text:
        return "permission denied; add your user to the docker group"
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.split(": ", 1)[-1][:120]


def _normal(host: str) -> str:
    """Compare endpoints as the SDK would use them (tcp://h:p, unix:///path)."""
    parsed = docker.utils.parse_host(host)
    text = parsed.decode() if isinstance(parsed, bytes) else parsed
    return text.replace("http+unix://", "unix://").replace("http://", "tcp://").replace("https://", "tcp://")


def config_dir(environ: Mapping[str, str]) -> Path:
    """The docker CLI's configuration folder: $DOCKER_CONFIG, else ~/.docker.

    Read the way the CLI reads it. (The SDK's own lookup goes elsewhere when
    the folder has no config.json, as after `docker --config DIR context create`.)
    """
    return Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def current_context(environ: Mapping[str, str]) -> str:
    """The config's currentContext, or "default"."""
    try:
        config = json.loads((config_dir(environ) / "config.json").read_text())
    except FileNotFoundError:
        return "default"
    except (OSError, ValueError) as exc:
        raise DockerUnavailable(f"cannot read {config_dir(environ) / 'config.json'}: {exc}") from None
    return str(config.get("currentContext") or "default") if isinstance(config, dict) else "default"


def _from_context(name: str, how: str, environ: Mapping[str, str]) -> Engine:
    """The docker endpoint of a context, from contexts/meta/<sha256(name)>/meta.json and its TLS folder."""
    key = hashlib.sha256(name.encode()).hexdigest()
    meta_file = config_dir(environ) / "contexts" / "meta" / key / "meta.json"
    try:
        meta = json.loads(meta_file.read_text())
        endpoint = meta["Endpoints"]["docker"]
    except FileNotFoundError:
        raise DockerUnavailable(f"docker context {name!r} (from {how}) does not exist — "
                                "`docker context ls` lists the contexts") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DockerUnavailable(f"docker context {name!r} (from {how}) cannot be read from {meta_file}: "
                                f"{exc}") from None
    # Contexts written by docker-py say https:// where the CLI says tcp://.
    host = str(endpoint.get("Host") or DEFAULT_HOST).replace("https://", "tcp://").replace("http://", "tcp://")
    tls_dir = config_dir(environ) / "contexts" / "tls" / key / "docker"
    tls = None
    verify = not endpoint.get("SkipTLSVerify", False)
    if (tls_dir / "cert.pem").is_file() and (tls_dir / "key.pem").is_file():
        ca = tls_dir / "ca.pem"
        tls = docker.tls.TLSConfig(client_cert=(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem")),
                                   ca_cert=str(ca) if ca.is_file() else None,
                                   verify=str(ca) if verify and ca.is_file() else verify)
    return Engine(host, f"context '{name}' from {how}", tls, str(tls_dir) if tls else None, bool(tls and verify))


def resolve(environ: Mapping[str, str] | None = None) -> Engine:
    """The engine labctl talks to, chosen as the Docker CLI chooses it.

    Raises DockerUnavailable when DOCKER_HOST and DOCKER_CONTEXT name two
    different engines (the CLI would silently prefer DOCKER_HOST; compose and
    a user reading their shell would not agree), or when a named context does
    not exist.
    """
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST", "").strip()
    context_name = env.get("DOCKER_CONTEXT", "").strip()
    if context_name == "default":
        context_name = ""      # the default context is "DOCKER_HOST, else the local socket"
    if context_name:
        from_context = _from_context(context_name, "DOCKER_CONTEXT", env)
        if host and _normal(host) != _normal(from_context.host):
            raise DockerUnavailable(f"DOCKER_HOST={host} and DOCKER_CONTEXT={context_name} "
                                    f"({from_context.host}) name different engines — unset one of them")
        if not host:
            return from_context
    if host:
        kwargs = docker.utils.kwargs_from_env(environment=dict(env))
        tls = kwargs.get("tls") or None
        verify = env.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
        return Engine(host, "DOCKER_HOST", tls, env.get("DOCKER_CERT_PATH") or None, verify)
    current = current_context(env)
    if current != "default":
        return _from_context(current, "the docker config's currentContext", env)
    return Engine(DEFAULT_HOST, "default socket")
