"""TCP reassembly: one direction's segments, put back into the byte stream the application saw.

TLS records cross segment boundaries (and on veth one "packet" can be 64 KB of
coalesced segments), so records are walked over the reassembled stream.

What the capture did not hold is never filled in: a segment that was not
captured, or the tail of a frame cut by the capture's snaplen, is a hole, and
the stream is a list of contiguous pieces separated by holes (Assembled.holes
says where each one is and how many bytes it lacks). Sequence numbers are
unwrapped past 2^32 (RFC 9293 section 3.4) from segment to segment, so a
stream that wraps, with or without its SYN in the capture, keeps its order.
"""

from __future__ import annotations

from typing import NamedTuple

MOD = 1 << 32           # TCP sequence numbers are 32-bit and wrap (RFC 9293 section 3.4)
HALF = 1 << 31


def _signed(delta: int) -> int:
    """DELTA modulo 2^32, as the nearest signed distance (-2^31 <= result < 2^31)."""
    return ((delta + HALF) % MOD) - HALF


class Hole(NamedTuple):
    """Bytes of a direction's stream the capture does not hold."""

    at: int         # where it sits in Assembled.data: the captured bytes before it are data[:at]
    offset: int     # where it starts in the stream: bytes since the stream's first byte, holes counted
    size: int       # bytes missing (sequence space the wire used that no captured frame shows)
    frame: int      # the first frame captured after it (tshark's "previous segment not captured"); 0 at the end

    def to_dict(self) -> dict[str, int]:
        return {"offset": self.offset, "bytes": self.size, "before_frame": self.frame}


class Assembled(NamedTuple):
    """One TCP direction's byte stream: the captured bytes, where each came from, and the holes between them.

    ``data`` is the captured bytes in stream order with nothing put in the
    holes' place, so a byte's index in ``data`` is its stream offset minus the
    sizes of the holes before it (stream_offset does that sum). Two bytes on
    either side of a hole are not neighbours: pieces() gives the contiguous runs.
    """

    data: bytes
    offsets: list[int]          # where each chunk starts in data, ascending from 0
    times: list[float]          # when the segment that carried it was captured
    frames: list[int]           # and in which frame
    holes: list[Hole]           # in stream order; one may sit at len(data) (the stream ends in it)

    @property
    def gaps(self) -> int:
        """How many holes the stream has."""
        return len(self.holes)

    @property
    def missing(self) -> int:
        """Bytes of the stream the capture does not hold."""
        return sum(h.size for h in self.holes)

    def pieces(self) -> list[tuple[int, int, int]]:
        """(start, end) in data of each contiguous run of captured bytes, in order (none empty), and the
        stream offset of its start."""
        out, start, skipped = [], 0, 0
        for hole in self.holes:
            if hole.at > start:
                out.append((start, hole.at, start + skipped))
                start = hole.at
            skipped += hole.size
        if len(self.data) > start:
            out.append((start, len(self.data), start + skipped))
        return out

    def stream_offset(self, index: int) -> int:
        """The stream offset (holes counted) of data[index]; for an index where a hole sits, the byte after it."""
        return index + sum(h.size for h in self.holes if h.at <= index)


NOTHING = Assembled(b"", [], [], [], [])


class Direction:
    """Segments of one TCP direction, reassembled into the byte stream the application saw.

    ``isn`` may be set to the sequence number of the direction's first byte
    (its SYN's sequence number plus one, RFC 9293 section 3.4): bytes missing
    between it and the first captured segment are then a hole too.
    """

    __slots__ = ("isn", "segments", "held", "_raw", "_unwrapped", "_base", "_floor")

    def __init__(self) -> None:
        self.isn: int | None = None
        self.segments: list[tuple[int, bytes, float, int, int]] = []    # unwrapped seq, bytes, time, frame, length
        self.held = 0            # captured payload bytes the segments hold (bytes)
        self._raw = 0            # the last segment's sequence number as the wire gave it
        self._unwrapped = 0      # and unwrapped: the same modulo 2^32, on the line from the first segment
        self._base = 0           # the unwrapped number of the stream's first byte, as the last assemble() found it
        self._floor: int | None = None   # after release(): the unwrapped number the held stream starts at

    def add(self, seq: int, payload: bytes, ts: float, frame: int, length: int | None = None) -> None:
        """One segment: its 32-bit sequence number SEQ, the bytes the capture holds, when and in which frame.

        LENGTH is the segment's payload length on the wire (from the IP header),
        when the frame was cut by the snaplen: the bytes past the captured ones
        are then a hole, even at the end of the stream. Each sequence number is
        unwrapped to the value nearest the previous segment's, so the stream
        keeps its order across 2^32.
        """
        fresh = not self.segments and self._floor is None       # the first segment of the direction
        seq_u = seq if fresh else self._unwrapped + _signed(seq - self._raw)
        self._raw, self._unwrapped = seq, seq_u
        wire = max(len(payload), length if length is not None else 0)
        self.segments.append((seq_u, payload, ts, frame, wire))
        self.held += len(payload)

    def release(self, offset: int) -> None:
        """Let go of the bytes before stream OFFSET of the last assemble() (read already, by the caller).

        Later assemble()s start there, at offset 0: a segment that arrives for
        bytes before it is a retransmission of what was read, and is dropped.
        Memory then holds what lies past OFFSET only.
        """
        floor = self._base + offset
        kept: list[tuple[int, bytes, float, int, int]] = []
        for seq, payload, ts, frame, wire in self.segments:
            if seq + max(len(payload), wire) <= floor:
                continue
            cut = max(floor - seq, 0)
            kept.append((seq + cut, payload[cut:], ts, frame, wire - cut))
        self.segments = kept
        self.held = sum(len(s[1]) for s in kept)
        self._floor = floor

    def assemble(self) -> Assembled:
        """The stream in sequence order, each byte taken from the first segment that carried it, holes kept."""
        if not self.segments:
            return NOTHING
        first = self.segments[0][0]     # the first segment's number is its own unwrapped value
        base = min(s[0] for s in self.segments)
        if self._floor is not None:
            base = self._floor          # what came before was released; a late copy of it is cut away
        elif self.isn is not None:
            # The SYN's number, unwrapped next to the first segment's; a segment before it (a SYN's own
            # data) starts the stream instead.
            base = min(base, first + _signed(self.isn - first))
        self._base = base
        # In sequence order; at one sequence number the segment seen first comes first (a retransmission,
        # even a shorter one, is a later copy: tshark dissects the original and marks the copy).
        ordered = sorted(((seq - base, payload, ts, frame, wire) if seq >= base else
                          (0, payload[base - seq:], ts, frame, wire - (base - seq))
                          for seq, payload, ts, frame, wire in self.segments),
                         key=lambda s: (s[0], s[2], s[3]))
        chunks: list[bytes] = []
        offsets: list[int] = []
        times: list[float] = []
        frames: list[int] = []
        holes: list[Hole] = []
        end, size = 0, 0        # end: stream offset covered so far (holes included); size: bytes kept
        claimed = 0             # stream offset up to which the wire is known to have sent bytes
        for rel, payload, ts, frame, wire in ordered:
            if rel > end:
                holes.append(Hole(size, end, rel - end, frame))   # bytes the wire never showed us
                end = rel
            claimed = max(claimed, rel + wire)
            if rel + len(payload) <= end:
                continue           # a retransmission of what we have (or a frame cut before it)
            piece = payload[end - rel:]
            offsets.append(size)   # where the piece lands in the joined stream, which has no holes
            times.append(ts)
            frames.append(frame)
            chunks.append(piece)
            end += len(piece)
            size += len(piece)
        if claimed > end:
            holes.append(Hole(size, end, claimed - end, 0))       # the last frame was cut by the snaplen
        return Assembled(b"".join(chunks), offsets, times, frames, holes)
