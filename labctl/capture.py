"""Captures on the wire: start, stop, and bring the pcap to the host.

The wire runs tcpdump through its own small control program (wirectl), so a
capture has a name, a file in the captures volume and, when it stops, the
counters tcpdump printed. A capture whose kernel dropped packets, or that
had to be killed, is incomplete: we say so instead of analysing half a story.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import docker.errors

from .errors import CaptureError
from .lab import Lab


@dataclass(frozen=True)
class CaptureStats:
    name: str
    file: str           # path inside the wire container
    bytes: int
    packets: int
    received_by_filter: int
    dropped_by_kernel: int
    complete: bool
    killed: bool


def _wirectl(lab: Lab, *args: str) -> dict:
    status, out, err = lab.exec("wire", ["python3", "/app/wirectl.py", *args], timeout=20)
    try:
        result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except json.JSONDecodeError:
        result = {}
    if status != 0 or "error" in result:
        reason = result.get("error") or (err.strip().splitlines() or [f"exit status {status}"])[-1]
        raise CaptureError(f"wire: capture {' '.join(args)} failed: {reason}")
    return result


def start(lab: Lab, name: str, buffer_mib: int | None = None, replace: str = "", direction: str = "in") -> None:
    """Begin capturing; returns once tcpdump is listening, so nothing after this is missed.

    ``replace``: first delete the stopped captures whose names start with it.
    """
    extra = (["--buffer-mib", str(buffer_mib)] if buffer_mib else []) + (["--replace", replace] if replace else [])
    if direction != "in":
        extra += ["--direction", direction]
    _wirectl(lab, "start", name, *extra)


def stop(lab: Lab, name: str) -> CaptureStats:
    """Stop capturing and return tcpdump's own counters."""
    r = _wirectl(lab, "stop", name)
    return CaptureStats(name=r["name"], file=r["file"], bytes=r["bytes"], packets=r["packets"],
                        received_by_filter=r["received_by_filter"],
                        dropped_by_kernel=r["dropped_by_kernel"], complete=r["complete"],
                        killed=r["killed"])


def remove(lab: Lab, name: str) -> None:
    _wirectl(lab, "rm", name)


def listing(lab: Lab) -> list[dict]:
    return _wirectl(lab, "list")["captures"]


def read(lab: Lab, name: str) -> bytes:
    """The pcap's bytes, copied out of the wire's captures volume."""
    wire = lab.container("wire")
    try:
        stream, _ = wire.get_archive(f"/captures/{name}.pcap")
    except docker.errors.NotFound:
        raise CaptureError(f"capture {name!r} is not on the wire — "
                           "`labctl capture list` shows what is there") from None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile(f"{name}.pcap")
        if member is None:
            raise CaptureError(f"capture {name!r} came back empty from the wire")
        return member.read()


def save(data: bytes, dest: Path) -> Path:
    """Write a capture on the host, readable by its owner only (it may hold secrets)."""
    dest = dest.expanduser()
    if dest.is_dir():
        raise CaptureError(f"{dest} is a folder; give a file name such as {dest / 'lab.pcap'}")
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, dest)        # all or nothing: an interrupted run leaves no half file
    except OSError as exc:
        raise CaptureError(f"cannot write {dest}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest
