"""Reading a capture file, forward and in pieces: pcap (any byte order, micro- or nanoseconds) and pcapng.

Our own reader rather than dpkt's: dpkt's pcapng reader knows only the first
interface of a file (its link type and its timestamp resolution apply to every
packet, so a file merged from two link types is misread), and neither of its
readers gives a packet's original length, without which a frame cut by the
snaplen cannot be told from a whole one. The formats are small: pcap is a
24-byte header and 16-byte record headers (https://wiki.wireshark.org/Development/LibpcapFileFormat);
pcapng is a sequence of blocks (https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/):
section header, interface description, enhanced/simple/obsolete packet,
decryption secrets, and others that are skipped.

The file is read in chunks of CHUNK bytes (more for a larger block), and each
frame is handed out as a memoryview into its chunk: nothing is copied here, and
memory holds a chunk or two whatever the file's size. What is not a capture,
or is damaged, or cut short, is refused in one line (CaptureFormatError, a
UsageError: exit status 2) as soon as it is met: a record or block length
that no capture writes (more than tshark accepts) is refused before its
bytes are read.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Iterator, NoReturn, Protocol

from ..errors import UsageError
from ..files import PathLike, open_input, read_input, shown


class CaptureFormatError(UsageError):
    """The file is not a readable capture (not pcap/pcapng, damaged, or cut short): exit status 2."""


PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
               b"\xa1\xb2\xc3\xd4": (">", 1e-6), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
HEADER = 24          # a pcap file header; a pcapng file starts with a section header block of 28 bytes or more
EXPECTED = "a pcap or pcapng capture"

CHUNK = 1 << 20
# The largest frame Wireshark reads for a link type (wiretap's WTAP_MAX_PACKET_SIZE_*): a record claiming more
# is damage, or not a capture at all. And the largest pcapng block it reads.
MAX_FRAME = 262144
MAX_FRAME_FOR = {231: 128 * 1024 * 1024, 249: 128 * 1024 * 1024, 274: 8 * 1024 * 1024}   # DBUS, USBPCAP, EBHSCR
MAX_BLOCK = 16 * 1024 * 1024

# pcapng block types
SHB, IDB, PB, SPB, NRB, ISB, EPB, DSB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6, 0x0A
BLOCK_NAMES = {SHB: "section header block", IDB: "interface description block", PB: "packet block",
               SPB: "simple packet block", NRB: "name resolution block", ISB: "interface statistics block",
               EPB: "enhanced packet block", DSB: "decryption secrets block"}
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, OPT_TSRESOL, OPT_TSOFFSET = 0, 9, 14

Frame = tuple[float, int, memoryview, int]
"""(seconds since the epoch, link type, the frame's captured bytes, its original length on the wire)"""


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def _a(noun: str) -> str:
    """'an enhanced packet block', 'a section header block'."""
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def max_frame(linktype: int) -> int:
    """The most bytes tshark accepts in one frame of LINKTYPE."""
    return MAX_FRAME_FOR.get(linktype, MAX_FRAME)


class _Source:
    """The file's bytes, read forward: buf[pos:end] is read and not yet used; base is buf[0]'s file offset."""

    __slots__ = ("handle", "name", "buf", "pos", "end", "base")

    def __init__(self, handle: Readable | None, name: str, data: bytes = b"") -> None:
        self.handle, self.name = handle, name
        self.buf = memoryview(data)
        self.pos, self.end, self.base = 0, len(data), 0

    def fill(self, n: int) -> bool:
        """Have at least N unused bytes in buf from pos; False if the file ends before that."""
        if self.end - self.pos >= n:
            return True
        if self.handle is None:
            return False
        left = self.end - self.pos
        # A new buffer each time: the frames handed out are views of the old one.
        fresh = bytearray(max(CHUNK, n))
        view = memoryview(fresh)
        view[:left] = self.buf[self.pos:self.end]
        got = left
        while got < n:
            try:
                read = self.handle.readinto(view[got:])
            except OSError as exc:
                raise CaptureFormatError(f"cannot read {self.name}: {exc.strerror or exc}") from None
            if not read:
                break
            got += read
        self.base += self.pos
        self.buf, self.pos, self.end = view.toreadonly(), 0, got
        return got >= n

    @property
    def offset(self) -> int:
        """Where pos is in the file."""
        return self.base + self.pos


class Interface:
    """A pcapng interface (or a pcap file's one): its link type, snaplen and clock."""

    __slots__ = ("linktype", "snaplen", "scale", "offset")

    def __init__(self, linktype: int, snaplen: int, scale: float = 1e-6, offset: int = 0) -> None:
        self.linktype, self.snaplen, self.scale, self.offset = linktype, snaplen, scale, offset


class Capture:
    """An open capture file: iterate over it for each packet's Frame, in file order.

    Reading the header (construction) raises CaptureFormatError for what is not
    a pcap or pcapng file; iterating raises it for damage (a length no capture
    writes, a packet naming an interface that was never described) and for a
    file cut short, naming how many whole packets came before. After (or
    during) iteration: ``interfaces`` lists every interface described, and
    ``secrets`` the (secrets type, bytes) of each Decryption Secrets Block (type
    0x544c534b: an NSS key log), both in file order.
    """

    def __init__(self, handle: Readable | None, name: str, data: bytes = b"") -> None:
        self.name = name
        self.packets = 0
        self.interfaces: list[Interface] = []
        self.secrets: list[tuple[int, bytes]] = []
        self._last = 0.0                # the latest timestamp: a simple packet block has none of its own
        self._src = _Source(handle, name, data)
        if not self._src.fill(HEADER):
            raise CaptureFormatError(f"{name} is not a capture: {self._src.end} bytes, too short for a pcap header")
        head = bytes(self._src.buf[self._src.pos:self._src.pos + HEADER])
        check_magic(head, name)
        self.format = "pcapng" if head[:4] == PCAPNG_MAGIC else "pcap"
        self._endian = "<"
        if self.format == "pcap":
            self._pcap_header(head)

    # -- pcap -------------------------------------------------------------------------------------

    def _pcap_header(self, head: bytes) -> None:
        endian, scale = PCAP_MAGICS[head[:4]]
        major, minor, _, _, snaplen, linktype = struct.unpack_from(endian + "HHiIII", head, 4)
        if major != 2:
            raise CaptureFormatError(f"{self.name} is a pcap file of version {major}.{minor}: only version 2 "
                                     "(2.4, what libpcap and Wireshark write) is read")
        # The top bits of the link type field say whether frames end in an FCS (FCS bits, then a flag).
        self.interfaces.append(Interface(linktype & 0x0FFFFFFF, snaplen, scale))
        self._endian = endian
        self._src.pos += HEADER

    def _pcap(self) -> Iterator[Frame]:
        src, interface = self._src, self.interfaces[0]
        unpack = struct.Struct(self._endian + "IIII").unpack_from
        scale, linktype, limit = interface.scale, interface.linktype, max_frame(interface.linktype)
        while True:
            if src.end - src.pos < 16 and not src.fill(16):       # (the test first: this is the hot path)
                if src.end > src.pos:
                    self._cut("a packet record")
                return
            seconds, fraction, captured, original = unpack(src.buf, src.pos)
            if captured > limit:
                raise CaptureFormatError(f"{self.name} is damaged, or not a capture after its header: packet "
                                         f"record {self.packets + 1} (at byte {src.offset}) claims {captured} "
                                         f"captured bytes, more than a frame holds ({limit})")
            if src.end - src.pos < 16 + captured and not src.fill(16 + captured):
                self._cut("a packet record")
            start = src.pos + 16
            src.pos = start + captured
            self.packets += 1
            yield seconds + fraction * scale, linktype, src.buf[start:src.pos], original

    def _cut(self, inside: str) -> NoReturn:
        stray = self._src.end - self._src.pos
        raise CaptureFormatError(f"{self.name} is cut short: it ends inside {inside} after {self.packets} whole "
                                 f"packets ({stray} stray bytes)")

    # -- pcapng -----------------------------------------------------------------------------------

    def _pcapng(self) -> Iterator[Frame]:
        src = self._src
        while True:
            if src.end - src.pos < 12 and not src.fill(12):
                if src.end > src.pos:
                    self._cut("a block")
                return
            kind = struct.unpack_from(self._endian + "I", src.buf, src.pos)[0]
            if kind == SHB:                     # a new section: its own byte order, its own interfaces
                self._section()
            length = struct.unpack_from(self._endian + "I", src.buf, src.pos + 4)[0]
            name = _a(BLOCK_NAMES.get(kind, f"block of type 0x{kind:08x}"))
            if length % 4 or length < 12 or length > MAX_BLOCK:
                raise CaptureFormatError(f"{self.name} is damaged, or not a capture after its header: {name} "
                                         f"at byte {src.offset} claims to be {length} bytes long (a pcapng block is "
                                         f"a multiple of 4 bytes, from 12 to {MAX_BLOCK})")
            if src.end - src.pos < length and not src.fill(length):
                self._cut(f"{name} of {length} bytes")
            buf, pos = src.buf, src.pos
            trailer = struct.unpack_from(self._endian + "I", buf, pos + length - 4)[0]
            if trailer != length:
                raise CaptureFormatError(f"{self.name} is damaged: {name} at byte {src.offset} says it is "
                                         f"{length} bytes long at its start and {trailer} at its end")
            src.pos = pos + length
            if kind == EPB or kind == PB or kind == SPB:
                yield self._packet(kind, buf, pos, length, name, src.offset - length)
            elif kind == IDB:
                self._interface(buf, pos, length)
            elif kind == DSB and length >= 20:
                secrets_type, size = struct.unpack_from(self._endian + "II", buf, pos + 8)
                self.secrets.append((secrets_type, bytes(buf[pos + 16:pos + 16 + min(size, length - 20)])))

    def _section(self) -> None:
        if not self._src.fill(16):
            self._cut("a section header block")
        buf, pos = self._src.buf, self._src.pos
        magic = bytes(buf[pos + 8:pos + 12])
        if magic == BYTE_ORDER_MAGIC.to_bytes(4, "little"):
            self._endian = "<"
        elif magic == BYTE_ORDER_MAGIC.to_bytes(4, "big"):
            self._endian = ">"
        else:
            raise CaptureFormatError(f"{self.name} is not a pcapng file: its section header's byte-order magic is "
                                     f"{magic.hex()}, not 1a2b3c4d in either byte order")
        major, minor = struct.unpack_from(self._endian + "HH", buf, pos + 12)
        if major != 1:
            raise CaptureFormatError(f"{self.name} is a pcapng file of version {major}.{minor}: only version 1 "
                                     "is read")
        self.interfaces = []

    def _interface(self, buf: memoryview, pos: int, length: int) -> None:
        if length < 20:
            raise CaptureFormatError(f"{self.name} is damaged: an interface description block of {length} bytes "
                                     "(it has 20 or more)")
        linktype, snaplen = struct.unpack_from(self._endian + "H2xI", buf, pos + 8)
        interface = Interface(linktype, snaplen)
        at, end = pos + 16, pos + length - 4
        while at + 4 <= end:
            code, size = struct.unpack_from(self._endian + "HH", buf, at)
            if code == OPT_END:
                break
            if code == OPT_TSRESOL and size >= 1:
                value = buf[at + 4]
                interface.scale = 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -(value & 0x7F)
            elif code == OPT_TSOFFSET and size >= 8:
                interface.offset = struct.unpack_from(self._endian + "q", buf, at + 4)[0]
            at += 4 + (size + 3) // 4 * 4
        self.interfaces.append(interface)

    def _packet(self, kind: int, buf: memoryview, pos: int, length: int, name: str, at: int) -> Frame:
        if kind == SPB:                     # no interface number (it is the first) and no timestamp
            index, ticks, (original,) = 0, None, struct.unpack_from(self._endian + "I", buf, pos + 8)
            start, room = pos + 12, length - 16
        else:
            if kind == EPB:
                index, high, low, captured, original = struct.unpack_from(self._endian + "5I", buf, pos + 8)
            else:
                index, high, low, captured, original = struct.unpack_from(self._endian + "H2x4I", buf, pos + 8)
            ticks, start, room = (high << 32) | low, pos + 28, length - 32
        if index >= len(self.interfaces):
            raise CaptureFormatError(f"{self.name} is damaged: packet {self.packets + 1} ({name} at byte {at}) "
                                     f"names interface {index}, and its section describes "
                                     f"{len(self.interfaces)} interface(s)")
        interface = self.interfaces[index]
        if kind == SPB:
            captured = min(original, room, interface.snaplen or original)
        if captured > room or captured > max_frame(interface.linktype):
            raise CaptureFormatError(f"{self.name} is damaged: packet {self.packets + 1} ({name} at byte {at}) "
                                     f"claims {captured} captured bytes in a block of {length}")
        self.packets += 1
        if ticks is None:
            when = self._last
        else:
            when = self._last = interface.offset + ticks * interface.scale
        return when, interface.linktype, buf[start:start + captured], original

    def __iter__(self) -> Iterator[Frame]:
        return self._pcapng() if self.format == "pcapng" else self._pcap()


def check_magic(head: bytes, name: str) -> None:
    """Refuse, from its first bytes alone, a file that is not a pcap or pcapng capture."""
    magic = head[:4]
    if magic not in PCAP_MAGICS and magic != PCAPNG_MAGIC:
        start = " ".join(f"{b:02x}" for b in head[:8])
        raise CaptureFormatError(f"{name} is not a pcap or pcapng file (it starts with {start}, not a capture's "
                                 "magic number a1b2c3d4, d4c3b2a1, a1b23c4d, 4d3cb2a1 or 0a0d0d0a)")
    if len(head) < HEADER:
        raise CaptureFormatError(f"{name} is not a capture: {len(head)} bytes, too short for a pcap header")


def reader(data: bytes, name: str) -> Capture:
    """The packets of a capture held in memory (the frames are views of DATA: nothing is copied)."""
    return Capture(None, name, data)


@contextlib.contextmanager
def open_capture(path: PathLike) -> Iterator[Capture]:
    """The capture at PATH, open to be read forward (closed on leaving the block), or CaptureFormatError
    (a UsageError: exit 2) in one line.

    Like read_capture, the first bytes are checked before anything else is read; a
    folder, device, FIFO or socket is refused before it is opened.
    """
    name = shown(path)
    with open_input(path, EXPECTED, head=HEADER, check_head=lambda head: check_magic(head, name),
                    error=CaptureFormatError) as handle:
        yield Capture(handle, name)


def read_capture(path: PathLike) -> bytes:
    """The bytes of the capture at PATH, or CaptureFormatError (a UsageError: exit 2) in one line.

    The file's first bytes are read and checked before the rest, so a file that
    is not a capture costs a header's worth of reading, whatever its size; a
    folder, device, FIFO or socket is refused before it is opened.
    """
    name = shown(path)
    return read_input(path, EXPECTED, head=HEADER, check_head=lambda head: check_magic(head, name),
                      error=CaptureFormatError)
