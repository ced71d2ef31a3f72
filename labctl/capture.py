"""Captures on the wire: start, stop, and bring the pcap to the host.

The wire runs tcpdump through its own small control program (wirectl), so a
capture has a name, a file in the captures volume and, when it stops, the
counters tcpdump printed. A capture whose kernel dropped packets, or that
had to be killed, is incomplete: we say so instead of analysing half a story.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import docker.errors

from . import __version__
from .errors import CaptureError, LabError, UsageError
from .files import PRIVATE, has_control, kind, read_input, shown, write_partial, write_whole
from .interrupts import shielded
from .lab import TIMEOUT_SETTING, Lab
from .tls.pcapfile import CaptureFormatError
from .tls.pcapng import to_pcapng


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
    status, out, err = lab.exec("wire", ["python3", "/app/wirectl.py", *args])
    try:
        result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except json.JSONDecodeError:
        result = {}
    if status in (124, 137):
        raise CaptureError(f"wire: capture {args[0]} did not finish within {lab.timeout:g} s "
                           f"({TIMEOUT_SETTING} sets it)")
    if status != 0 or "error" in result:
        reason = result.get("error") or (err.strip().splitlines() or [f"exit status {status}"])[-1]
        if "within" in reason:
            reason += f" ({TIMEOUT_SETTING} sets it)"
        raise CaptureError(f"wire: capture {' '.join(args)} failed: {reason}")
    return result


def start(lab: Lab, name: str, buffer_mib: int | None = None, replace: str = "", direction: str = "in") -> None:
    """Begin capturing; returns once tcpdump is listening, so nothing after this is missed.

    ``replace``: first delete the stopped captures whose names start with it.
    """
    extra = (["--buffer-mib", str(buffer_mib)] if buffer_mib else []) + (["--replace", replace] if replace else [])
    extra += ["--timeout", f"{lab.timeout:g}"]
    if lab.turn_token:
        extra += ["--turn", lab.turn_token]      # a run's capture starts only while its turn is held
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


def concatenate(pcaps: list[bytes]) -> bytes:
    """One pcap of the wire's captures PCAPS, in the order given (each taken after the one before).

    The wire's captures share one file header (tcpdump on the same interface:
    same byte order, link type and snap length), so the packet records of the
    later ones follow the first's header. CaptureError if the headers differ.
    """
    if not pcaps:
        return b""
    header = pcaps[0][:24]
    for pcap in pcaps[1:]:
        if pcap[:24] != header:
            raise CaptureError("the captures to join have different pcap headers (link type, snap length or "
                               "byte order): they did not come from the same wire")
    return header + b"".join(pcap[24:] for pcap in pcaps)


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


# -- files on the host that may hold secrets --------------------------------------------
#
# A capture or a key log can hold everything a student typed: every copy on the
# host is written by files.write_whole, its owner's alone (mode 0600), checked.
# Output paths are checked before a scenario runs (check_output,
# check_output_dir), by creating and removing the temporary file for real where
# it will be made.


def _example(option: str) -> str:
    return "lab.keylog" if option == "--keylog" else "lab.pcap"


def _refuse_target(dest: Path, error: type[LabError], option: str = "") -> None:
    """Refuse a destination that exists and is not a regular file: never rename over a folder or a device."""
    try:
        info = os.stat(dest)
    except (FileNotFoundError, NotADirectoryError):
        return                      # absent (a folder above it is checked apart), or a dangling symlink
    except OSError as exc:
        raise error(f"{option + ' ' if option else ''}{shown(dest)}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{option + ' ' if option else ''}{shown(dest)} is a folder; give a file name such as "
                    f"{shown(dest / _example(option))}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{option + ' ' if option else ''}{shown(dest)} is {kind(info.st_mode)}, not a file: "
                    "give the name of a file to write")


def save(data: bytes, dest: Path) -> Path:
    """Write a capture (or key log) on the host, all or nothing, readable by its owner only (mode 0600)."""
    dest = Path(dest).expanduser()
    _refuse_target(dest, CaptureError)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_whole(data, dest, PRIVATE, CaptureError)      # an interrupted run leaves no half file
    except OSError as exc:
        raise CaptureError(f"cannot write {shown(dest)}: {exc.strerror or exc}") from None
    return dest


# -- pcapng with the key log inside -------------------------------------------------------
#
# A name ending in .pcapng asks for a pcapng whose Decryption Secrets Block
# holds the run's NSS key log (labctl.tls.pcapng): Wireshark and tshark open it
# decrypted with no options. The pcapng is made in memory first, then written
# by save() like any capture: mode 0600 checked, all or nothing, shielded.

FORMATS = ("pcap", "pcapng")


def format_of(path: str | os.PathLike[str]) -> str | None:
    """The capture format a file name asks for by its suffix: "pcapng" (.pcapng), "pcap" (.pcap), else None."""
    name = os.fspath(path).lower()
    return "pcapng" if name.endswith(".pcapng") else "pcap" if name.endswith(".pcap") else None


@dataclass(frozen=True)
class Saved:
    """Where a capture went and in what form."""

    path: Path
    format: str            # "pcap" or "pcapng"
    keys_embedded: bool    # a pcapng whose Decryption Secrets Block holds an NSS key log
    tls_connections: int = 0       # with keys embedded: the TLS connections in the capture with a ClientHello
    connections_with_keys: int = 0     # and those the key log has secrets for (by client random)

    def note(self, why_no_keys: str) -> str:
        """What the file is, for the line that names it; WHY_NO_KEYS says why a pcapng holds no key log."""
        if self.format != "pcapng":
            return str(self.path)
        if self.keys_embedded and self.tls_connections and self.connections_with_keys < self.tls_connections:
            return (f"{self.path} (NSS key log embedded, but it has secrets for {self.connections_with_keys} of "
                    f"its {self.tls_connections} TLS connections: the others will not open decrypted — "
                    "a key log from another session?)")
        if self.keys_embedded:
            return (f"{self.path} (NSS key log embedded: Wireshark and tshark open it decrypted, "
                    "no key log option needed)")
        return (f"{self.path} (no key log embedded: {why_no_keys}, so whatever TLS it holds is not decryptable "
                "from the file alone)")


def save_capture(pcap: bytes, dest: Path, keylog: str = "", fmt: str | None = None) -> Saved:
    """Write the wire's pcap PCAP to DEST as FMT ("pcap" or "pcapng"; None: by DEST's suffix, see format_of).

    As pcapng, KEYLOG (an NSS key log; "" for none) goes in a Decryption
    Secrets Block before the first packet; without one the pcapng has no DSB.
    Written by save(): mode 0600 checked on disk, all or nothing. CaptureError
    if the wire's pcap cannot be read as one.
    """
    fmt = fmt or format_of(dest) or "pcap"
    if fmt == "pcapng":
        try:
            data = to_pcapng(pcap, keylog, application=f"labctl {__version__}", name="the wire's capture")
        except CaptureFormatError as exc:      # the wire's file, not the user's input: not exit 2
            raise CaptureError(f"cannot write {shown(dest)} as pcapng: {exc}") from None
    else:
        data = pcap
    embedded = fmt == "pcapng" and keylog.strip() != ""
    total = matched = 0
    if embedded:
        # Which of the capture's TLS connections the key log opens: a key log from another session
        # embeds fine and decrypts nothing, and the user is told so.
        from .tls.analyzer import analyze
        from .tls.decrypt import KeyLog
        keys = KeyLog.parse(keylog)
        randoms = [c.client_hello.random for c in analyze(pcap, "the wire's capture").tls if c.client_hello]
        total, matched = len(randoms), sum(1 for r in randoms if keys.labels(r))
    return Saved(save(data, dest), fmt, embedded, total, matched)


KEYLOG_LIMIT = 64 << 20          # bytes: a key log holds a few hundred bytes per connection
_LOOKS_LIKE_KEY_LOG = re.compile(r"^\s*[A-Z][A-Z0-9_]* [0-9A-Fa-f]{16,} [0-9A-Fa-f]+\s*$", re.M)


def read_keylog(value: str | os.PathLike[str], option: str = "--keylog") -> str:
    """The NSS key log in the host file VALUE, to embed in a pcapng; UsageError (exit 2), one line, if it
    is not a regular file of UTF-8 text with at least one key log line (LABEL <client_random hex> <secret
    hex>). Lines Wireshark cannot use are kept: it skips them itself."""
    path = _name(value, option)
    expected = "an NSS key log (SSLKEYLOGFILE)"
    data = read_input(path, expected, limit=KEYLOG_LIMIT, label=option)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{option} {shown(path)} is not text (byte {exc.start} is not UTF-8): "
                         f"give {expected}") from None
    if not _LOOKS_LIKE_KEY_LOG.search(text):
        raise UsageError(f"{option} {shown(path)} holds no key log line (LABEL <client_random hex> <secret hex>, "
                         f"e.g. CLIENT_RANDOM or CLIENT_TRAFFIC_SECRET_0): give {expected}")
    return text


def _name(value: str | os.PathLike[str], option: str) -> Path:
    text = os.fspath(value)
    if not text.strip():
        raise UsageError(f"{option} {shown(text)} is not a name: give a file or folder name")
    if has_control(text):
        # Legal on Linux, but never meant: a pasted newline, and every line naming it would break.
        raise UsageError(f"{option} {shown(text)} holds a control character (a newline?): give a plain name")
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:      # ~nobody/x: no such user
        raise UsageError(f"{option} {shown(text)}: {exc}") from None


def _probe(folder: Path, dest_name: str, option: str, path: Path) -> None:
    """Create and remove a file where PATH's files will be made, mode 0600 checked: UsageError if that fails.

    FOLDER may not exist yet (save makes it): then the nearest existing
    folder above it must be one we can write in.
    """
    where = folder
    while True:
        try:
            info = os.stat(where)
            break
        except (FileNotFoundError, NotADirectoryError):
            if where.parent == where:
                raise UsageError(f"{option} {shown(path)}: no folder of it exists") from None
            where = where.parent
        except OSError as exc:
            raise UsageError(f"{option} {shown(path)}: cannot use {shown(where)}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{option} {shown(path)}: {shown(where)} is {kind(info.st_mode)}, not a folder")
    # In the folder itself, the very temporary name save() will write under (a
    # stale one from an interrupted run is removed, as save() would); above it
    # (a folder still to be made), a name of our own that nothing else uses.
    dest = where / (dest_name if where == folder else f".labctl-probe-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with shielded():            # a signal is held until the probe is gone again
            probe = write_partial(b"", dest)
            try:
                mode = stat.S_IMODE(os.lstat(probe).st_mode)
            finally:
                os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{option} {shown(path)}: cannot write in {shown(where)} "
                         f"({exc.strerror or exc}); choose another place") from None
    if mode != PRIVATE:
        raise UsageError(f"{option} {shown(path)}: files made in {shown(where)} come out mode {mode:04o}, not 0600 "
                         "(this filesystem ignores permissions), and these files may hold secrets; "
                         "choose another place")


def check_output(value: str | os.PathLike[str], option: str = "--pcap") -> Path:
    """Where a capture or key log will be written, checked before anything runs; UsageError (exit 2) if unusable.

    Refused: an empty or blank name; a name that ends in '/' or names '.' or
    '..'; a path that exists and is not a regular file (a folder, /dev/null, a
    FIFO, a socket); a folder we cannot write in or make (tested for real by
    creating and removing the temporary file save() will use); a filesystem
    that does not keep mode 0600.
    """
    path = _name(value, option)
    text = os.fspath(value)
    if text.endswith(os.sep) or path.name in ("", ".", ".."):
        raise UsageError(f"{option} {shown(text)} names a folder; give a file name such as "
                         f"{shown(path / _example(option))}")
    _refuse_target(path, UsageError, option)
    _probe(path.parent, path.name, option, path)
    return path


def _dangling(path: Path) -> bool:
    """Whether PATH is a symbolic link to nothing (a name too long or a folder we may not read: not one)."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def check_output_dir(value: str | os.PathLike[str], option: str = "--pcap", names: Iterable[str] = ()) -> Path:
    """A folder that will receive one file per scenario (`run all --pcap DIR`, `report --out DIR`), checked
    before anything runs: UsageError (exit 2) if it is not a folder, cannot be made or written, or if one of
    NAMES inside it exists and is not a regular file."""
    path = _name(value, option)
    try:
        info = os.stat(path)
    except OSError as exc:
        info, why = None, exc
    if info is None and _dangling(path):
        # It would not be made: mkdir refuses a name a link already holds ("File exists", after the run).
        leads = ("which leads back to itself (a loop)" if why.errno == errno.ELOOP
                 else "which does not exist")
        raise UsageError(f"{option} {shown(path)} is a symbolic link to {shown(os.readlink(path))}, {leads}: "
                         "give a folder, or make the link point to one")
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{option} {shown(path)} is {kind(info.st_mode)}, not a folder: "
                         "give a folder (one file per scenario goes in it)")
    names = list(names)
    for name in names:
        _refuse_target(path / name, UsageError, option)
    _probe(path, names[0] if names else "lab.pcap", option, path)
    return path
