"""Reading a capture file: pcap (any byte order, microsecond or nanosecond) and pcapng.

dpkt reads the formats; this module checks what dpkt leaves to its caller (a
file that is not a capture, one cut short) so that each is refused in one line
(CaptureFormatError, a UsageError: exit status 2).
"""

from __future__ import annotations

import io
import struct
from typing import Iterable

import dpkt

from ..errors import UsageError
from ..files import PathLike, read_input, shown


class CaptureFormatError(UsageError):
    """The file is not a readable capture (not pcap/pcapng, or cut short): exit status 2."""


PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
               b"\xa1\xb2\x3c\x4d": ">"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
HEADER = 24          # a pcap file header; a pcapng file starts with a longer block


def _check_records(data: bytes, name: str) -> None:
    """Walk the pcap record headers: a file cut short ends inside a record (dpkt stops silently)."""
    endian = PCAP_MAGICS.get(data[:4])
    if endian is None:
        return
    pos, count, size = 24, 0, len(data)
    while pos + 16 <= size:
        incl_len = struct.unpack_from(endian + "I", data, pos + 8)[0]
        if pos + 16 + incl_len > size:
            break
        pos += 16 + incl_len
        count += 1
    if pos != size:
        raise CaptureFormatError(f"{name} is cut short: it ends inside a packet record after {count} whole "
                                 f"packets ({size - pos} stray bytes)")


def reader(data: bytes, name: str) -> Iterable[tuple[float, bytes]]:
    """(timestamp, frame bytes) of each packet record, from dpkt's pcap or pcapng reader."""
    if len(data) < HEADER:
        raise CaptureFormatError(f"{name} is not a capture: {len(data)} bytes, too short for a pcap header")
    check_magic(data[:HEADER], name)
    magic = data[:4]
    _check_records(data, name)
    reader: Iterable[tuple[float, bytes]]
    try:
        if magic == PCAPNG_MAGIC:
            reader = dpkt.pcapng.Reader(io.BytesIO(data))
        else:
            reader = dpkt.pcap.Reader(io.BytesIO(data))
    except (ValueError, dpkt.UnpackError) as exc:
        raise CaptureFormatError(f"{name} is not a pcap or pcapng file ({exc})") from None
    return reader


EXPECTED = "a pcap or pcapng capture"


def check_magic(head: bytes, name: str) -> None:
    """Refuse, from its first bytes alone, a file that is not a pcap or pcapng capture."""
    magic = head[:4]
    if magic not in PCAP_MAGICS and magic != PCAPNG_MAGIC:
        start = " ".join(f"{b:02x}" for b in head[:8])
        raise CaptureFormatError(f"{name} is not a pcap or pcapng file (it starts with {start}, not a capture's "
                                 "magic number a1b2c3d4, d4c3b2a1, a1b23c4d, 4d3cb2a1 or 0a0d0d0a)")
    if len(head) < HEADER:
        raise CaptureFormatError(f"{name} is not a capture: {len(head)} bytes, too short for a pcap header")


def read_capture(path: PathLike) -> bytes:
    """The bytes of the capture at PATH, or CaptureFormatError (a UsageError: exit 2) in one line.

    The file's first bytes are read and checked before the rest, so a file that
    is not a capture costs a header's worth of reading, whatever its size; a
    folder, device, FIFO or socket is refused before it is opened.
    """
    name = shown(path)
    return read_input(path, EXPECTED, head=HEADER, check_head=lambda head: check_magic(head, name),
                      error=CaptureFormatError)
