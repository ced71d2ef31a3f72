"""TCP reassembly: one direction's segments, put back into the byte stream the application saw.

TLS records cross segment boundaries (and on veth one "packet" can be 64 KB of
coalesced segments), so records are walked over the reassembled stream.
"""

from __future__ import annotations

from typing import NamedTuple


class Assembled(NamedTuple):
    """One TCP direction's byte stream, and where each chunk of it came from."""

    data: bytes
    offsets: list[int]          # where each chunk starts in data, ascending from 0
    times: list[float]          # when the segment that carried it was captured
    frames: list[int]           # and in which frame
    gaps: int                   # holes: bytes the wire never showed


class Direction:
    """Segments of one TCP direction, reassembled into the byte stream the application saw."""

    __slots__ = ("isn", "segments")

    def __init__(self) -> None:
        self.isn: int | None = None
        self.segments: list[tuple[int, bytes, float, int]] = []

    def add(self, seq: int, payload: bytes, ts: float, frame: int) -> None:
        self.segments.append((seq, payload, ts, frame))

    def assemble(self) -> Assembled:
        """The stream in sequence order, each byte taken from the first segment that carried it."""
        if not self.segments:
            return Assembled(b"", [], [], [], 0)
        base = self.isn if self.isn is not None else min(s for s, _, _, _ in self.segments)
        # In sequence order; at one sequence number the segment seen first comes first (a retransmission,
        # even a shorter one, is a later copy: tshark dissects the original and marks the copy).
        ordered = sorted((((seq - base) % (1 << 32), payload, ts, frame) for seq, payload, ts, frame in self.segments),
                         key=lambda s: (s[0], s[2], s[3]))
        chunks, offsets, times, frames = [], [], [], []
        end, size, gaps = 0, 0, 0      # end: sequence space covered (holes included); size: bytes kept
        for rel, payload, ts, frame in ordered:
            if rel > end:
                gaps += 1          # bytes the wire never showed us; keep going after the hole
                end = rel
            if rel + len(payload) <= end:
                continue           # a retransmission of what we have
            piece = payload[end - rel:]
            offsets.append(size)   # where the piece lands in the joined stream, which has no holes
            times.append(ts)
            frames.append(frame)
            chunks.append(piece)
            end += len(piece)
            size += len(piece)
        return Assembled(b"".join(chunks), offsets, times, frames, gaps)
