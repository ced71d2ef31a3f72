"""Files the user names: printed safely, and read only when they are what they should be.

A path on the command line is whatever bytes the user typed. ``shown`` turns
one into a single printable line (a name that is not UTF-8, or that holds a
newline, must not crash an error message nor split it in two). ``read_input``
reads a file the user gave us only if it is a regular file: a folder, a FIFO
(whose open would wait for a writer forever) or a device (/dev/zero never
ends) is refused before a byte is read, and the caller looks at the first
bytes before the rest is read.
"""

from __future__ import annotations

import io
import os
import stat
from typing import Callable, Union

from .errors import UsageError

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
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode):
        return "a file"
    return "not a regular file"


def _read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_input(path: PathLike, expected: str, head: int = 0,
               check_head: Callable[[bytes], None] | None = None, limit: int | None = None,
               error: type[UsageError] = UsageError, label: str = "") -> bytes:
    """The bytes of a regular file the user named, or ``error`` (a UsageError: one line, exit
    status 2) naming it and ``expected``.

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
            # FileIO reads into one buffer sized from fstat: the capture is held once, not twice.
            reader = io.FileIO(fd, closefd=False)
            data = reader.read(limit + 1) if limit is not None else reader.readall()
        except OSError as exc:
            raise error(f"{cannot}: {exc.strerror or exc}") from None
        if not data:                # st_size is not trusted here: /proc files say 0 and are not empty
            raise error(f"{name} is empty: give {expected}")
        if limit is not None and len(data) > limit:
            raise error(f"{name} is over {limit} bytes, too big to be {expected}")
        return data
    finally:
        os.close(fd)

