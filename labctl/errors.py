"""Errors that carry their fix, and the exit statuses labctl uses.

Deep code raises a LabError subclass whose message names the thing that went
wrong and the next step; the CLI catches them in one place, prints one line
to stderr and exits with the error's status.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1          # the lab or a step failed
    USAGE = 2          # bad arguments or input (argparse uses 2 as well)
    UNAVAILABLE = 3    # Docker or a host tool is missing or unreachable
    INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2, as shells report it
    TERMINATED = 143   # SIGTERM: 128 + 15


class LabError(Exception):
    """Base of every error labctl reports as one line.

    ``details`` are extra lines (a service's last log lines, say) that the CLI
    prints indented under the message.
    """

    status = ExitStatus.ERROR

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class UsageError(LabError):
    """The user asked for something that does not exist or cannot work."""

    status = ExitStatus.USAGE


class DockerUnavailable(LabError):
    """The Docker daemon, the compose tool or another host tool is missing."""

    status = ExitStatus.UNAVAILABLE


class CertError(LabError):
    """A certificate or key in the certs folder is missing, corrupt or mismatched."""

    status = ExitStatus.USAGE


class ImageError(LabError):
    """The base image or a service image could not be built."""


class ComposeError(LabError):
    """docker compose failed; the message carries its last lines of output."""


class NotHealthy(LabError):
    """A service did not become healthy in time."""


class ServiceFailed(NotHealthy):
    """A service exited or Docker marked it unhealthy: no point waiting longer."""


class CaptureError(LabError):
    """A capture could not be started, stopped or read, or it is incomplete."""
