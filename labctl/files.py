"""Files on the host: named safely, read only when they are what they should be, written whole.

A path on the command line is whatever bytes the user typed. ``shown`` turns
one into a single printable line (a name that is not UTF-8, or that holds a
newline, must not crash an error message nor split it in two). ``read_input``
reads a file the user gave us only if it is a regular file: a folder, a FIFO
(whose open would wait for a writer forever) or a device (/dev/zero never
ends) is refused before a byte is read, and the caller looks at the first
bytes before the rest is read.

``write_whole`` (or ``write_partial`` then ``install``, for several files that
appear together) is the one way labctl writes a file that may hold a secret:
captures, key logs, the report, the lab's keys and certificates.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import Callable, Union

from .errors import LabError, UsageError
from .interrupts import shielded

PathLike = Union[str, "os.PathLike[str]"]


def has_control(text: str) -> bool:
    """Whether TEXT holds a control character (a newline, a tab, DEL...): legal in a file name, never
    meant in one typed or pasted, and it would break every line that names it."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def shown(path: PathLike) -> str:
    """PATH as one printable line: undecodable bytes as \\xNN, control characters escaped."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    printable = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    # Quoted when blank or padded, so that '' and ' x.pcap' are visible as what they are.
    return printable if text.strip() and text == text.strip() else f"'{printable}'"


def kind(mode: int) -> str:
    """What a stat mode says a path is, as a noun phrase: "a folder", "a FIFO", ..."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a file"))
    return next((noun for test, noun in kinds if test(mode)), "not a regular file")


def _read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def open_input(path: PathLike, expected: str, head: int = 0,
               check_head: Callable[[bytes], None] | None = None, limit: int | None = None,
               error: type[UsageError] = UsageError, label: str = "") -> io.FileIO:
    """A regular file the user named, opened for reading (unbuffered, at its start; the caller
    closes it), or ``error`` (a UsageError: one line, exit status 2) naming it and ``expected``.

    ``expected`` says what the file should be ("a pcap or pcapng capture").
    ``check_head`` is given the first ``head`` bytes (fewer if the file is
    shorter) before anything else is read; it raises to refuse the file.
    ``limit``: a file larger than this many bytes is refused unread.
    ``label`` goes before the file's name in messages (the option that named it: "--key").
    """
    name = f"{label} {shown(path)}" if label else shown(path)
    cannot = f"{label}: cannot read {shown(path)}" if label else f"cannot read {name}"
    if isinstance(path, str) and not path.strip():
        raise error(f"{name} is not a file name: give {expected}")
    try:
        # Looked at before it is opened: opening a device can have effects of its own.
        info = os.stat(path)
    except OSError as exc:
        raise error(f"{cannot}: {exc.strerror or exc}; give {expected}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{name} is {kind(info.st_mode)}, not a file: give {expected}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise error(f"{cannot}: {exc.strerror or exc}; give {expected}") from None
    try:
        # Checked on what was opened (no race with a rename): a FIFO opened with
        # O_NONBLOCK did not wait, and nothing is read from it.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{name} is {kind(info.st_mode)}, not a file: give {expected}")
        if limit is not None and info.st_size > limit:
            raise error(f"{name} is {info.st_size} bytes, too big to be {expected}")
        try:
            if head:
                first = _read_exactly(fd, head)
                if not first:
                    raise error(f"{name} is empty: give {expected}")
                if check_head is not None:
                    check_head(first)
                os.lseek(fd, 0, os.SEEK_SET)
        except OSError as exc:
            raise error(f"{cannot}: {exc.strerror or exc}") from None
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_input(path: PathLike, expected: str, head: int = 0,
               check_head: Callable[[bytes], None] | None = None, limit: int | None = None,
               error: type[UsageError] = UsageError, label: str = "") -> bytes:
    """The bytes of a regular file the user named, or ``error`` (a UsageError: one line, exit
    status 2) naming it and ``expected``; the checks, and the arguments, are open_input's."""
    name = f"{label} {shown(path)}" if label else shown(path)
    cannot = f"{label}: cannot read {shown(path)}" if label else f"cannot read {name}"
    with open_input(path, expected, head, check_head, limit, error, label) as reader:
        try:
            # FileIO reads into one buffer sized from fstat: the file is held once, not twice.
            data = reader.read(limit + 1) if limit is not None else reader.readall()
        except OSError as exc:
            raise error(f"{cannot}: {exc.strerror or exc}") from None
    if not data:                # st_size is not trusted here: /proc files say 0 and are not empty
        raise error(f"{name} is empty: give {expected}")
    if limit is not None and len(data) > limit:
        raise error(f"{name} is over {limit} bytes, too big to be {expected}")
    return data



# -- files that may hold secrets --------------------------------------------------------------
#
# A capture, a key log or a private key is its owner's alone, and that is
# checked, not assumed: the file is written under a temporary name created new
# (O_EXCL, never through a stale file or a symlink left there) and fchmod'ed to
# its mode before a byte is written (O_CREAT's mode only applies to a new file,
# and the umask can take bits away), then renamed over the destination, whose
# mode is then read back. All or nothing: a failure or an interrupt leaves no
# temporary file, and the destination is either the old file or the new one.

PRIVATE = 0o600


def partial(dest: Path) -> Path:
    """The temporary name DEST is written under before it is renamed into place."""
    return dest.with_name(f".{dest.name}.partial")


def _clear(tmp: Path) -> None:
    """Remove a stale temporary file (or a symlink planted in its place); never write through it."""
    try:
        info = os.lstat(tmp)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"{shown(tmp)} is a folder in the way", str(tmp))
    os.unlink(tmp)


def write_partial(data: bytes, dest: Path, mode: int = PRIVATE) -> Path:
    """Write DATA under DEST's temporary name, MODE set before the first byte; return that name.

    OSError as the system gave it; nothing is left behind on a failure. Call it
    inside ``interrupts.shielded()`` together with whatever records the name for
    cleanup: a signal landing between this return and the caller's ``try``
    would otherwise leave the file (seen in CI: a SIGINT at 0.38 s into a run).
    """
    tmp = partial(dest)
    _clear(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def install(tmp: Path, dest: Path, mode: int = PRIVATE, error: type[LabError] = LabError) -> None:
    """Rename TMP (from write_partial) over DEST and check that DEST is now a regular file of MODE.

    ``error`` (the caller's LabError subclass) if it is not (a filesystem that
    ignores modes): the file is removed rather than left readable by others.
    OSError from the rename.
    """
    try:
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    info = os.lstat(dest)
    if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != mode:
        what = f"mode {stat.S_IMODE(info.st_mode):04o}" if stat.S_ISREG(info.st_mode) else kind(info.st_mode)
        if stat.S_ISREG(info.st_mode):
            os.unlink(dest)
        whose = " (its owner's alone)" if mode == PRIVATE else ""
        raise error(f"{shown(dest)} came out {what}, not a file of mode {mode:04o}{whose}, so it was not kept: "
                    "this filesystem ignores permissions; write it elsewhere")


def write_whole(data: bytes, dest: Path, mode: int = PRIVATE, error: type[LabError] = LabError) -> None:
    """Write DATA to DEST all or nothing, as a regular file of MODE (checked after the rename).

    OSError as the system gave it; ``error`` if the file did not come out of MODE.
    """
    with shielded():                # a signal is held until the file is in place or removed
        install(write_partial(data, dest, mode), dest, mode, error)
