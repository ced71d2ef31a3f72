"""Runs on one lab take turns.

A scenario's verdict rests on its capture and the client's key log. Two runs
at once on one lab would each capture the other's connections (a second
ClientHello whose secrets are in the other run's key log, plaintext next to
TLS) and an attack scenario's iptables rules would catch the other's client.
So a scenario run, a `labctl client` and a certificate refresh hold the lab's
turn while they use it; another one waits, saying so.

The turn lives on the wire, not on this machine, so labctl processes on
different machines sharing one lab (a class on one engine) wait for each
other too: `wirectl turn` holds an flock inside the wire for as long as the
docker exec that runs it stays attached. If labctl dies without letting go
(SIGKILL, a lost connection), the exec loses its stdin, the wire stops the
run's capture and attacker itself, and the next holder stops the dead run's
client processes (see wirectl.turn).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import socket
import time
from typing import Iterator

import docker.errors
from docker.utils.socket import frames_iter

from .errors import LabError
from .images import Progress
from .interrupts import interruptible, shielded
from .lab import Lab



class _Lines:
    """JSON lines from the stdout of an attached exec (Docker's multiplexed stream)."""

    def __init__(self, sock: object) -> None:
        self.frames = frames_iter(sock, tty=False)
        self.buffer = b""
        self.stderr = b""

    def next(self) -> dict:
        while b"\n" not in self.buffer:
            try:
                stream, data = next(self.frames)
            except StopIteration:
                raise EOFError from None
            if stream == 1:
                self.buffer += data
            else:
                self.stderr += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)


def _raw(sock: object) -> socket.socket | None:
    return getattr(sock, "_sock", None) or (sock if isinstance(sock, socket.socket) else None)


def _close(sock: object, done: bool) -> None:
    """Let go of the turn: "done" tells the wire this run cleaned up after itself."""
    raw = _raw(sock)
    try:
        if done and raw is not None:
            raw.sendall(b"done\n")
        if raw is not None:
            raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        # exec_start(socket=True) gives whatever the engine's transport has (a SocketIO, a
        # buffered reader, an SSH socket): each has a close(), which the SDK's types do not all say.
        close = getattr(sock, "close", None)
        if callable(close):
            with contextlib.suppress(OSError):
                close()
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.close()


def owner_text(what: str) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"`labctl {what}` by {user}@{socket.gethostname()} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})"


@contextlib.contextmanager
def taken(lab: Lab, what: str, progress: Progress) -> Iterator[None]:
    """Hold the lab's turn for the block; wait, saying so, while another run holds it.

    ``what`` names this run for others who wait ("run tls"). Raises LabError
    if the wire cannot be asked (the lab is not up: the caller checked that).
    """
    wire = lab.container("wire")
    api = lab.docker.api
    token = secrets.token_hex(16)
    with shielded():
        try:
            exec_id = api.exec_create(wire.id, ["python3", "/app/wirectl.py", "turn", "--owner", owner_text(what),
                                                "--token", token], stdin=True, stdout=True, stderr=True)["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except docker.errors.APIError as exc:
            raise lab.broken("wire", exc) from None
        lines = _Lines(sock)
        try:
            raw = _raw(sock)
            with interruptible():           # waiting for another run may be long: Ctrl-C leaves at once
                if raw is not None:
                    raw.settimeout(lab.timeout)      # the wire answers at once: held, or waiting
                event = lines.next()
                if "waiting" in event:
                    progress(f"waiting for another run on lab '{lab.project}' ({event['waiting']})…")
                    if raw is not None:
                        raw.settimeout(None)         # as long as the other run takes
                    event = lines.next()
            if event.get("previous") == "abandoned":
                # The last holder died mid-run: its client may still be talking.
                lab.kill_run_processes()
        except (EOFError, ValueError, OSError) as exc:
            _close(sock, done=False)
            said = (lines.stderr.decode(errors="replace").strip().splitlines() or [type(exc).__name__])[-1]
            raise LabError(f"the wire did not grant the lab's turn ({said[:160]}) — a lab started by another "
                           f"version of labctl is brought to this one by `labctl{lab.flag} up`; "
                           f"`labctl{lab.flag} status` shows whether it is up") from None
        except BaseException:
            _close(sock, done=False)
            raise
    clean = False
    lab.turn_token = token           # a run's capture and attacker start only with it (wirectl.in_turn)
    try:
        yield
        clean = True
    finally:
        # After an error or an interruption the wire sweeps anyway (cheap when
        # the run's own cleanup already did it all).
        with shielded():
            lab.turn_token = None
            _close(sock, done=clean)
