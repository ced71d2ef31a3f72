"""pcapng with the NSS key log inside: a capture Wireshark and tshark open decrypted, with no options.

A pcapng file (draft-ietf-opsawg-pcapng, "PCAP Now Generic") is a sequence of
blocks, each ``type, total length, body, total length`` (section 3.1). A
Decryption Secrets Block (DSB, block type 0x0000000A, section 4.7) carries
secrets of one Secrets Type; type 0x544C534B ("TLSK") is an NSS key log, the
text SSLKEYLOGFILE writes. Wireshark reads the DSBs it meets before the packets
that need them, so ``to_pcapng`` writes the DSB right after the Section Header
Block, where ``editcap --inject-secrets tls,KEYLOG in.pcap out.pcapng`` puts it:

    SHB | DSB (TLSK) | IDB | EPB | EPB | ...

Everything after the SHB is byte for byte what editcap 4.0 writes for the
same pcap and key log (only the SHB's shb_userappl option, the writer's
name, differs); tests/unit/test_pcapng.py holds the two side by side.

``decryption_secrets`` reads the key log text back out of any pcapng (either
byte order, any block types around it), walking the blocks without ever
reading past one; a damaged block is a CaptureFormatError (one line, exit 2).
"""

from __future__ import annotations

import struct

from ..errors import UsageError
from .pcapfile import HEADER, PCAP_MAGICS, PCAPNG_MAGIC, CaptureFormatError, check_magic

SHB = 0x0A0D0D0A                 # Section Header Block (section 4.1): the same bytes in either byte order
IDB = 0x00000001                 # Interface Description Block (4.2)
EPB = 0x00000006                 # Enhanced Packet Block (4.3)
DSB = 0x0000000A                 # Decryption Secrets Block (4.7)
TLS_KEY_LOG = 0x544C534B         # Secrets Type "TLSK": an NSS key log (4.7)
BYTE_ORDER_MAGIC = 0x1A2B3C4D    # the SHB's Byte-Order Magic, read in the section's byte order

OPT_ENDOFOPT = 0
SHB_USERAPPL = 4                 # the application that wrote the section (UTF-8)
IF_TSRESOL = 9                   # the interface's timestamp resolution: 9 = 10^-9 s (default 6, 10^-6 s)

_BYTE_ORDERS = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}   # the Byte-Order Magic as laid out
_HEAD = {e: struct.Struct(e + "II") for e in "<>"}                        # block type, total length
_TAIL = {e: struct.Struct(e + "I") for e in "<>"}                         # the total length repeated
_LE = "<"                        # what we write: little-endian, as editcap on x86 and ARM


def _pad(data: bytes) -> bytes:
    """DATA followed by zeros up to a multiple of 4 bytes (pcapng's 32-bit alignment, section 3.6.2)."""
    return data + b"\0" * (-len(data) % 4)


def _block(block_type: int, body: bytes, endian: str = _LE) -> bytes:
    """One block: type, total length, BODY (already padded), total length again (section 3.1)."""
    total = 12 + len(body)
    return struct.pack(endian + "II", block_type, total) + body + struct.pack(endian + "I", total)


def _options(options: list[tuple[int, bytes]], endian: str = _LE) -> bytes:
    """OPTIONS as pcapng option TLVs (code, length, padded value), ended by opt_endofopt; none: no bytes."""
    if not options:
        return b""
    out = b"".join(struct.pack(endian + "HH", code, len(value)) + _pad(value) for code, value in options)
    return out + struct.pack(endian + "HH", OPT_ENDOFOPT, 0)


def section_header(application: str = "", endian: str = _LE) -> bytes:
    """A Section Header Block, version 1.0, section length unknown (-1), with shb_userappl APPLICATION."""
    body = struct.pack(endian + "IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
    options = [(SHB_USERAPPL, application.encode("utf-8"))] if application else []
    return _block(SHB, body + _options(options, endian), endian)


def secrets_block(keylog: str, endian: str = _LE) -> bytes:
    """A Decryption Secrets Block of Secrets Type TLSK holding the NSS key log KEYLOG (UTF-8 text).

    Secrets Length is the text's length without the padding (section 4.7).
    The spec asks that every line be terminated: a last line without its
    newline gets one. UsageError if KEYLOG is not encodable text.
    """
    if not keylog.endswith(("\n", "\r\n")):
        keylog += "\n"
    try:
        secrets = keylog.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"the key log is not text ({exc.reason} at character {exc.start})") from None
    return _block(DSB, struct.pack(endian + "II", TLS_KEY_LOG, len(secrets)) + _pad(secrets), endian)


def _pcap_blocks(pcap: bytes, name: str) -> list[bytes]:
    """The IDB and EPBs of a classic pcap, in order: its one link type, snap length and timestamps.

    Timestamps are kept exactly: a microsecond pcap's interface keeps the
    default resolution (no if_tsresol, as editcap writes it), a nanosecond
    one gets if_tsresol 9. CaptureFormatError if a record is cut short.
    """
    endian, resolution = PCAP_MAGICS[pcap[:4]]
    nanoseconds = resolution < 1e-6
    snaplen, network = struct.unpack_from(endian + "II", pcap, 16)
    options = [(IF_TSRESOL, b"\x09")] if nanoseconds else []
    # The link type is the low 16 bits; the FCS bits above it are dropped, as editcap does.
    blocks = [_block(IDB, struct.pack(_LE + "HHI", network & 0xFFFF, 0, snaplen) + _options(options))]
    scale = 1_000_000_000 if nanoseconds else 1_000_000
    record = struct.Struct(endian + "IIII")
    epb_head = struct.Struct(_LE + "IIIIII")
    pos, size, count = HEADER, len(pcap), 0
    while pos < size:
        if pos + 16 > size:
            raise CaptureFormatError(f"{name} is cut short: it ends inside a packet record header after {count} "
                                     f"whole packets ({size - pos} stray bytes)")
        seconds, fraction, incl_len, orig_len = record.unpack_from(pcap, pos)
        end = pos + 16 + incl_len
        if end > size:
            raise CaptureFormatError(f"{name} is cut short: packet {count + 1} claims {incl_len} bytes, "
                                     f"{size - pos - 16} are there")
        stamp = seconds * scale + fraction
        data = pcap[pos + 16:end]
        total = 32 + len(data) + (-len(data) % 4)
        blocks.append(epb_head.pack(EPB, total, 0, stamp >> 32, stamp & 0xFFFFFFFF, incl_len)
                      + struct.pack(_LE + "I", orig_len) + _pad(data) + struct.pack(_LE + "I", total))
        pos, count = end, count + 1
    return blocks


def to_pcapng(pcap: bytes, keylog: str, application: str = "", name: str = "the capture") -> bytes:
    """PCAP (a classic pcap, any byte order, micro- or nanosecond timestamps; or a pcapng) as a pcapng
    whose Decryption Secrets Block holds the NSS key log KEYLOG, so Wireshark and tshark decrypt it with
    no options.

    Classic pcap in: SHB (shb_userappl APPLICATION, if given), the DSB, one
    IDB (a classic pcap has one link type, snap length and timestamp
    resolution), then one EPB per record with its original timestamp, captured
    length and original length (draft-ietf-opsawg-pcapng sections 4.1-4.3,
    4.7). pcapng in: the DSB is inserted after its first SHB, in that
    section's byte order, and every other block is kept as it was (its
    interfaces, their link types and the packets' options). An empty or blank
    KEYLOG writes no DSB: the capture is then not decryptable from the file
    alone. NAME is how errors name the input. CaptureFormatError (exit 2) if
    PCAP is not a capture or is cut short.
    """
    check_magic(pcap[:HEADER], name)
    dsb = keylog.strip() != ""
    if pcap[:4] == PCAPNG_MAGIC:
        blocks = _blocks(pcap, name)
        if not dsb:
            return pcap
        end, endian = blocks[0][1], blocks[0][2]
        return pcap[:end] + secrets_block(keylog, endian) + pcap[end:]
    out = [section_header(application)]
    if dsb:
        out.append(secrets_block(keylog))
    out += _pcap_blocks(pcap, name)
    return b"".join(out)


def _blocks(data: bytes, name: str) -> list[tuple[int, int, str, int]]:
    """Every block of the pcapng DATA as (start, end, byte order, type), each checked whole.

    CaptureFormatError, naming the block and its offset, for a Section Header
    Block without its byte-order magic, a block whose total length is under
    12 bytes, not a multiple of 4, past the end of the data, or not repeated
    at the block's end.
    """
    out: list[tuple[int, int, str, int]] = []
    pos, size, endian = 0, len(data), ""
    head, tail = _HEAD["<"], _TAIL["<"]          # the SHB's type reads the same in either byte order
    while pos < size:
        if pos + 12 > size:
            raise CaptureFormatError(f"{name} is cut short: {size - pos} stray bytes after the last whole block "
                                     f"(offset {pos})")
        if head.unpack_from(data, pos)[0] == SHB:
            magic = data[pos + 8:pos + 12]
            endian = _BYTE_ORDERS.get(magic, "")
            if not endian:
                raise CaptureFormatError(f"{name}: the Section Header Block at offset {pos} has no byte-order "
                                         f"magic (1a2b3c4d), it has {magic.hex()}")
            head, tail = _HEAD[endian], _TAIL[endian]
        elif not endian:
            raise CaptureFormatError(f"{name} is not a pcapng file: it does not start with a Section Header Block")
        block_type, total = head.unpack_from(data, pos)
        end = pos + total
        if total < 12 or total % 4 or end > size or tail.unpack_from(data, end - 4)[0] != total:
            what = f"block {len(out) + 1} (type 0x{block_type:08x}) at offset {pos}"
            if total < 12 or total % 4:
                raise CaptureFormatError(f"{name}: {what} has a total length of {total} bytes, "
                                         "not a multiple of 4 of at least 12")
            if end > size:
                raise CaptureFormatError(f"{name} is cut short: {what} claims {total} bytes, "
                                         f"{size - pos} are there")
            trailer = tail.unpack_from(data, end - 4)[0]
            raise CaptureFormatError(f"{name}: {what} says {total} bytes at its start and {trailer} at its end")
        out.append((pos, end, endian, block_type))
        pos = end
    return out


def decryption_secrets(data: bytes, name: str = "the capture") -> str:
    """The NSS key log text of every TLSK Decryption Secrets Block in the pcapng DATA, in file order.

    Empty for a classic pcap, or a pcapng with no TLSK DSB; DSBs of other
    Secrets Types (SSH, WireGuard...) and every other block are passed over,
    in sections of either byte order. A section whose major version is not 1
    is skipped, as its blocks cannot be read as version 1's (section 3.4).
    Each DSB's text is UTF-8 (bytes that are not become U+FFFD) and ends in a
    newline, so two DSBs never run together on one line.
    CaptureFormatError (a UsageError: exit 2), in one line naming NAME, for
    data that is not a capture, and for a damaged block (see ``_blocks``) or
    a DSB whose Secrets Length runs past its block.
    """
    if data[:4] != PCAPNG_MAGIC:
        check_magic(data[:HEADER], name)            # not a capture at all: refused; a classic pcap: no DSB
        return ""
    texts: list[str] = []
    version = 0
    for start, end, endian, block_type in _blocks(data, name):
        if block_type == SHB:
            if end - start < 28:
                raise CaptureFormatError(f"{name}: the Section Header Block at offset {start} is "
                                         f"{end - start} bytes, shorter than its 28-byte minimum")
            version = struct.unpack_from(endian + "H", data, start + 12)[0]
            continue
        if block_type != DSB or version != 1:
            continue
        if end - start < 20:
            raise CaptureFormatError(f"{name}: the Decryption Secrets Block at offset {start} is "
                                     f"{end - start} bytes, shorter than its 20-byte minimum")
        secrets_type, length = struct.unpack_from(endian + "II", data, start + 8)
        if length > end - start - 20:
            raise CaptureFormatError(f"{name}: the Decryption Secrets Block at offset {start} claims {length} "
                                     f"bytes of secrets in a block of {end - start}")
        texts.append(keylog_text([(secrets_type, data[start + 16:start + 16 + length])]))
    return "".join(texts)


def keylog_text(secrets: list[tuple[int, bytes]]) -> str:
    """The NSS key log text of the TLSK ones among SECRETS ((Secrets Type, bytes) of each DSB, as
    pcapfile.Capture.secrets holds them): UTF-8 (bytes that are not become U+FFFD), each DSB's text
    ending in a newline so that two never run together on one line."""
    texts = [raw.decode("utf-8", "replace") for kind, raw in secrets if kind == TLS_KEY_LOG and raw]
    return "".join(text if text.endswith("\n") else text + "\n" for text in texts)
