"""Decrypt captured TLS records with the client's NSS key log.

This is the lab's proof that "the ciphertext on the wire is the message":
given the TLS records of one connection, as parsed from a capture, and the
key log the client wrote (SSLKEYLOGFILE / --keylog), recover the plaintext.

The key schedule is written out here on purpose, from the RFCs, so it can be
read next to them; `cryptography` supplies only the primitives (AES-GCM,
ChaCha20-Poly1305, HMAC, HKDF-Expand, SHA-2).

- TLS 1.3 (RFC 8446): the key log holds the handshake and application
  traffic secrets; each becomes a key and an IV with HKDF-Expand-Label
  (section 7.1, 7.3), each record's nonce is the IV XOR its sequence number
  (5.3), the additional data is the record header (5.2), and the plaintext
  ends with the real content type followed by zero padding (5.4).
- TLS 1.2 (RFC 5246, 5288, 7905): the key log holds the master secret
  (CLIENT_RANDOM, or Wireshark's older `RSA Session-ID:` lines), or the
  pre-master secret (NSS `RSA` lines, keyed by the first 8 bytes of the
  encrypted pre-master secret in the ClientKeyExchange; Wireshark's
  PMS_CLIENT_RANDOM), from which the master secret is derived (RFC 5246
  section 8.1; RFC 7627 section 4 when extended_master_secret was
  negotiated). The PRF (section 5) turns it into the key block (6.3), from
  which come the write keys and IVs. AES-GCM records carry an 8-byte
  explicit nonce after a 4-byte implicit salt (RFC 5288 section 3);
  ChaCha20-Poly1305 records use IV XOR sequence number as in TLS 1.3 (RFC
  7905 section 2). The additional data is seq_num || type || version ||
  length (RFC 5246 section 6.2.3.3). A renegotiation's hellos travel
  encrypted; they are read as they are decrypted, and its ChangeCipherSpec
  starts the next keys (RFC 5246 section 7.1, RFC 5746).

Records lost before the capture saw them (a TCP hole) leave the next
record's sequence number unknown: it is searched for (TLS 1.2 AES-GCM's
explicit nonce first, which most stacks set to the sequence number) and
the records skipped are counted.

TLS 1.3 0-RTT early data (RFC 8446 section 4.2.10) is decrypted with the
CLIENT_EARLY_TRAFFIC_SECRET once the ServerHello names the suite, up to the
client's EndOfEarlyData. Only AEAD suites are supported. This module imports
only the standard library, `cryptography`, labctl.errors and labctl.files (for
the key log file) and the protocol's constants and message splitting
(labctl.tls.constants, .records).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from ..errors import UsageError
from ..files import PathLike, read_input, shown
from .constants import (ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, CLIENT_HELLO, CLIENT_KEY_EXCHANGE,
                        END_OF_EARLY_DATA, EXT_EARLY_DATA, EXT_EXTENDED_MASTER_SECRET, EXT_SUPPORTED_VERSIONS,
                        FINISHED, HANDSHAKE, HELLO_REQUEST, KEY_UPDATE, SERVER_HELLO, TLS12, TLS13, VERSIONS,
                        cipher_suite_name)
from .records import parse_hello, split_handshake, supported_versions

DIRECTIONS = ("c2s", "s2c")
TAG_LEN = 16
MASTER_SECRET_LEN = 48          # RFC 5246 section 8.1


class DecryptError(Exception):
    """The records cannot be decrypted; the message says why, in one line."""


class KeyLogError(UsageError):
    """The key log file cannot be read, or holds nothing usable: one line, exit status 2."""


# --- cipher suites -----------------------------------------------------------

@dataclass(frozen=True)
class CipherSuite:
    code: int
    name: str
    version: int          # TLS12 or TLS13
    aead: str             # "AES-GCM" or "ChaCha20-Poly1305"
    key_len: int          # bytes
    hash: type[hashes.HashAlgorithm]   # TLS 1.3: HKDF hash; TLS 1.2: PRF hash

    @property
    def fixed_iv_len(self) -> int:
        """TLS 1.2 implicit IV from the key block: a 4-byte salt for GCM (RFC 5288 section 3),
        the whole 12-byte nonce mask for ChaCha20 (RFC 7905 section 2). TLS 1.3 IVs are 12 bytes."""
        return 4 if self.version == TLS12 and self.aead == "AES-GCM" else 12


def _suite(code: int) -> CipherSuite:
    """Suite CODE's parameters, as its IANA name spells them out: TLS 1.2 names say TLS_<kx>_WITH_<cipher>_<hash>,
    TLS 1.3 names TLS_<cipher>_<hash> (RFC 8446 appendix B.4); the cipher's key size is in its name
    (AES_128, AES_256; ChaCha20 keys are 32 bytes, RFC 7905), and the hash is the HKDF hash (TLS 1.3) or
    the PRF hash (TLS 1.2, RFC 5288 and RFC 5289)."""
    name = cipher_suite_name(code)
    return CipherSuite(code, name, TLS12 if "_WITH_" in name else TLS13,
                       "ChaCha20-Poly1305" if "CHACHA20_POLY1305" in name else "AES-GCM",
                       16 if "AES_128" in name else 32, hashes.SHA384 if name.endswith("SHA384") else hashes.SHA256)


# The AEAD suites this decryptor opens: TLS 1.3's three; TLS 1.2 AES-GCM with RSA, DHE and ECDHE
# key exchange (RFC 5288, RFC 5289); TLS 1.2 ChaCha20-Poly1305 (RFC 7905).
SUITES: dict[int, CipherSuite] = {code: _suite(code) for code in (
    0x1301, 0x1302, 0x1303, 0x009C, 0x009D, 0x009E, 0x009F, 0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9, 0xCCAA)}


def suite_for(code: int, version: int | None = None) -> CipherSuite:
    """The supported suite CODE (for VERSION, if given), or DecryptError naming it in hex."""
    suite = SUITES.get(code)
    if suite is None:
        name = cipher_suite_name(code)
        named = f" ({name})" if name != "Unknown" else ""
        raise DecryptError(f"cipher suite 0x{code:04X} is not supported{named}: only the AEAD suites "
                           f"{', '.join(f'0x{c:04X}' for c in SUITES)} can be decrypted")
    if version is not None and suite.version != version:
        raise DecryptError(f"cipher suite 0x{code:04X} ({suite.name}) belongs to "
                           f"{_version_name(suite.version)}, not {_version_name(version)}")
    return suite


def _version_name(version: int) -> str:
    return VERSIONS.get(version, f"version 0x{version:04X}")    # this module's messages say "version 0x7F1C"


def _check_version(version: int | None) -> int:
    if not version:
        raise DecryptError("the TLS version is unknown: the records must include the connection's "
                           "handshake (ClientHello and ServerHello)")
    if version not in (TLS12, TLS13):
        raise DecryptError(f"{_version_name(version)} is not supported: only TLS 1.2 and TLS 1.3 "
                           "AEAD suites can be decrypted")
    return version


# --- the key log --------------------------------------------------------------

# NSS key log format (https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/,
# draft-ietf-tls-keylogfile): "<LABEL> <client_random hex> <secret hex>", one entry a line, '#' starts
# a comment. Read as Wireshark's ssl_load_keyfile reads it (epan/dissectors/packet-tls-utils.c): a line
# it cannot use is skipped and the rest are used. Beyond NSS's labels, Wireshark also takes
# "RSA Session-ID:<hex> Master-Key:<hex>" (its own older format, keyed by the ServerHello's session id)
# and "PMS_CLIENT_RANDOM <client random> <pre-master secret>".
TLS13_LABELS = ("CLIENT_EARLY_TRAFFIC_SECRET", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EARLY_EXPORTER_SECRET", "EXPORTER_SECRET")
LABELS = ("PMS_CLIENT_RANDOM", "CLIENT_RANDOM", "RSA", *TLS13_LABELS, "ECH_SECRET", "ECH_CONFIG")
SESSION_ID = "RSA Session-ID"     # the secrets' key for Wireshark's old lines: (SESSION_ID, session id) -> master

# Where an entry starts: a label followed by a blank. Labels hold letters that are not hex digits, so
# one cannot start inside a hex field: two entries run together ("...9a21CLIENT_RANDOM ...") split
# cleanly. Longer labels first, so EARLY_EXPORTER_SECRET is not read as EXPORTER_SECRET.
_ENTRY = re.compile("(?:" + "|".join(sorted(LABELS, key=len, reverse=True)) + r")(?=[ \t])")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_SESSION_LINE = re.compile(r"RSA[ \t]+Session-ID:(\S*)[ \t]+Master-Key:(\S*)$")
BOM = "\ufeff"


@dataclass(frozen=True)
class SkippedLine:
    """A key log line, or part of one, that could not be used, and why."""

    source: str          # the key log's name, as shown ("keys.txt")
    line: int            # 1-based
    reason: str          # "unknown label 'FOO'", "the client random is 31 bytes, not 32", ...
    text: str            # the text skipped, cut to 60 characters

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "line": self.line, "reason": self.reason, "text": self.text}


def _cut(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _entry(label: str, text: str) -> tuple[tuple[str, bytes], bytes] | str:
    """One entry's (label, client random or key) -> secret, or why it cannot be used."""
    if label == "RSA" and "Session-ID:" in text:
        match = _SESSION_LINE.match(text)
        if match is None:
            return "not in Wireshark's 'RSA Session-ID:<hex> Master-Key:<hex>' form"
        session_id, master = match[1], match[2]
        if not _HEX.fullmatch(session_id) or not _HEX.fullmatch(master):
            return "the session id and master key must be hex"
        if len(master) != 2 * MASTER_SECRET_LEN:
            return f"the master key is {len(master) // 2} bytes, not {MASTER_SECRET_LEN}"
        if len(session_id) > 64:
            return f"the session id is {len(session_id) // 2} bytes; a TLS session id has at most 32"
        return (SESSION_ID, bytes.fromhex(session_id)), bytes.fromhex(master)
    fields = text.split()
    if len(fields) < 3:
        return f"incomplete: '{label} <client random> <secret>' expected"
    key, secret = fields[1], fields[2]
    what = "the encrypted pre-master secret's first bytes" if label == "RSA" else "the client random"
    for name, value in ((what, key), ("the secret", secret)):
        if not _HEX.fullmatch(value):
            return f"{name} is not hex (two hex digits a byte)"
    if label == "RSA":
        if len(key) != 16:
            return (f"an RSA entry starts with the first 8 bytes of the encrypted pre-master secret, "
                    f"not {len(key) // 2}")
    elif len(key) != 64:
        return f"the client random is {len(key) // 2} bytes, not 32"
    if label == "CLIENT_RANDOM" and len(secret) != 2 * MASTER_SECRET_LEN:
        return f"a CLIENT_RANDOM master secret is {MASTER_SECRET_LEN} bytes, not {len(secret) // 2}"
    return (label, bytes.fromhex(key)), bytes.fromhex(secret)


@dataclass(frozen=True)
class KeyLog:
    """Secrets from an NSS key log, by (label, client_random): (CLIENT_RANDOM, random) -> master secret,
    (CLIENT_TRAFFIC_SECRET_0, random) -> traffic secret, ...; ("RSA", first 8 bytes of the encrypted
    pre-master secret) -> pre-master secret; (SESSION_ID, session id) -> master secret.

    ``entries`` counts the entries read; ``skipped`` says which lines (or parts of lines) were not.
    """

    secrets: dict[tuple[str, bytes], bytes] = field(default_factory=dict)
    skipped: tuple[SkippedLine, ...] = ()
    entries: int = 0

    @classmethod
    def parse(cls, text: str, source: str = "the key log") -> KeyLog:
        """Read NSS key log TEXT as Wireshark does; never raises.

        Blank lines and '#' comments are ignored; a UTF-8 byte order mark, CR LF
        line ends and blanks around a line are allowed; two entries run together
        on one line are both read; an entry that cannot be used is skipped and
        listed in ``skipped`` with its line number and why. A later entry for the
        same (label, client random) replaces an earlier one, as in Wireshark.
        """
        secrets: dict[tuple[str, bytes], bytes] = {}
        skipped: list[SkippedLine] = []
        entries = 0
        for number, raw in enumerate(text.removeprefix(BOM).split("\n"), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            found = list(_ENTRY.finditer(line))
            if not found or found[0].start() != 0:
                words = line.split()
                reason = (f"unknown label '{_cut(words[0], 40)}'"
                          if len(words) >= 3 and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", words[0])
                          else "not an NSS key log entry (LABEL CLIENT_RANDOM SECRET)")
                skipped.append(SkippedLine(source, number, reason, _cut(line)))
                continue
            for match, stop in zip(found, [m.start() for m in found[1:]] + [len(line)]):
                text_of_entry = line[match.start():stop].strip()
                # An entry is three words: LABEL KEY SECRET, or RSA Session-ID:<hex> Master-Key:<hex>.
                words = text_of_entry.split()
                result = _entry(match[0], " ".join(words[:3]))
                if isinstance(result, str):
                    skipped.append(SkippedLine(source, number, result, _cut(text_of_entry)))
                    continue
                secrets[result[0]] = result[1]
                entries += 1
                tail = " ".join(words[3:])
                if tail and not tail.startswith("#"):
                    skipped.append(SkippedLine(source, number, "text after the entry (the entry is used)",
                                               _cut(tail)))
        return cls(secrets, tuple(skipped), entries)

    def merged(self, other: KeyLog) -> KeyLog:
        """This key log and OTHER's entries (OTHER's win where both have one)."""
        return KeyLog({**self.secrets, **other.secrets}, self.skipped + other.skipped, self.entries + other.entries)

    def labels(self, client_random: bytes) -> set[str]:
        """The labels logged for CLIENT_RANDOM."""
        return {label for label, random in self.secrets if random == client_random}

    def secret(self, label: str, client_random: bytes) -> bytes:
        """The LABEL secret for CLIENT_RANDOM, or DecryptError saying which is missing."""
        try:
            return self.secrets[(label, client_random)]
        except KeyError:
            if not self.labels(client_random):
                raise DecryptError(_no_secrets(client_random)) from None
            raise DecryptError(f"the key log has no {label} for client random "
                               f"{client_random.hex()[:16]}…") from None


MAX_KEYLOG_BYTES = 1 << 29      # 512 MiB: some three million TLS 1.3 connections' worth of lines
EXPECTED_KEYLOG = "an NSS key log (SSLKEYLOGFILE), lines of 'LABEL CLIENT_RANDOM SECRET' in hex"


def read_keylog(path: PathLike) -> KeyLog:
    """The key log file at PATH, read as KeyLog.parse reads text.

    Raises KeyLogError (a UsageError: one line, exit status 2) when the file
    cannot be read or holds no usable entry at all; lines that cannot be used
    beside usable ones are not errors (KeyLog.skipped lists them). UTF-8 and,
    with a byte order mark, UTF-16 text are read (Windows PowerShell writes
    either); undecodable bytes spoil only their own line.
    """
    data = read_input(path, EXPECTED_KEYLOG, limit=MAX_KEYLOG_BYTES, error=KeyLogError, label="--keylog")
    name = shown(path)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = data.decode("utf-16", "replace")
    else:
        text = data.decode("utf-8", "replace")
    keylog = KeyLog.parse(text, name)
    if not keylog.entries:
        if not keylog.skipped:
            raise KeyLogError(f"--keylog {name} holds no key log entry (only blank lines and comments): "
                              f"give {EXPECTED_KEYLOG}")
        first = keylog.skipped[0]
        raise KeyLogError(f"--keylog {name} holds no usable key log entry: {len(keylog.skipped)} line(s) "
                          f"skipped, the first (line {first.line}) because: {first.reason}; give {EXPECTED_KEYLOG}")
    return keylog


def _no_secrets(client_random: bytes) -> str:
    return (f"the key log has no secrets for this connection's client random "
            f"{client_random.hex()[:16]}… (a key log from another session?)")


# --- records in and plaintext out --------------------------------------------

@dataclass(frozen=True)
class Record:
    """One TLS record as seen on the wire (RFC 8446 section 5.1, RFC 5246 section 6.2)."""

    direction: str       # "c2s" or "s2c"
    content_type: int    # outer type from the 5-byte header
    version: int         # legacy_record_version from the header
    fragment: bytes      # the bytes after the 5-byte header
    after_gap: bool = False   # bytes the capture did not see came before it (a TCP hole): records may be lost
    missing: int = 0          # bytes of the fragment the capture does not hold (a hole, a frame cut short)

    @property
    def header(self) -> bytes:
        return bytes([self.content_type]) + self.version.to_bytes(2, "big") + len(self.fragment).to_bytes(2, "big")


class CapturedRecord(Protocol):
    """A record as the analyzer read it off the wire (labctl.tls.analyzer.TlsRecord)."""

    @property
    def direction(self) -> str: ...
    @property
    def content_type(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def fragment(self) -> bytes: ...
    @property
    def after_gap(self) -> int: ...
    @property
    def missing(self) -> int: ...


def captured(records: Iterable[CapturedRecord]) -> list[Record]:
    """The analyzer's records of one connection (both directions, capture order) as the decryptor takes
    them: what a hole or a cut frame took is said, so sequence numbers are counted right."""
    return [Record(r.direction, r.content_type, r.version, r.fragment, r.after_gap > 0, r.missing) for r in records]


@dataclass(frozen=True)
class Plaintext:
    direction: str
    index: int           # index of the record in the input list
    content_type: int    # inner/real content type (23 application data, 22 handshake, 21 alert)
    data: bytes


def application_data(plaintexts: list[Plaintext], direction: str) -> bytes:
    """DIRECTION's application data (content type 23), concatenated in record order."""
    return b"".join(p.data for p in plaintexts if p.direction == direction and p.content_type == APPLICATION_DATA)


@dataclass(frozen=True)
class Failure:
    """A captured record that could not be decrypted, and why."""

    direction: str
    index: int           # index of the record in the input list
    reason: str


@dataclass(frozen=True)
class Lost:
    """Records the capture never saw: the sequence number jumped by ``records`` before record ``index``."""

    direction: str
    index: int           # the first record decrypted after them
    records: int


@dataclass
class Decryption:
    """What decrypt_records made of one connection.

    ``error`` is why nothing could be decrypted (None when something was);
    ``failures`` the records that could not be, each with why; ``lost`` the
    records a TCP hole took, counted from the jump of the sequence number.
    """

    plaintexts: list[Plaintext] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    error: str | None = None
    version: int | None = None          # of the first handshake
    cipher_suite: int | None = None
    handshakes: int = 0                 # full handshakes whose keys were used: 2 or more after a renegotiation

    def application_data(self, direction: str) -> bytes:
        """DIRECTION's decrypted application data (content type 23), in record order."""
        return application_data(self.plaintexts, direction)

    def application_records(self, direction: str) -> int:
        """How many records of DIRECTION decrypted to application data."""
        return sum(1 for p in self.plaintexts if p.direction == direction and p.content_type == APPLICATION_DATA)

    def not_decrypted(self) -> list[tuple[str, str, list[int]]]:
        """The failures grouped: (direction, reason, the records' indexes), in order of first appearance."""
        groups: dict[tuple[str, str], list[int]] = {}
        for failure in self.failures:
            groups.setdefault((failure.direction, failure.reason), []).append(failure.index)
        return [(direction, reason, indexes) for (direction, reason), indexes in groups.items()]

    def to_dict(self) -> dict[str, object]:
        """The JSON shape README.md documents: per direction the bytes (base64), their count and the
        records they came from; the records that could not be decrypted, grouped by why; the records lost."""
        out: dict[str, object] = {"decrypted": self.error is None, "reason": self.error, "handshakes": self.handshakes}
        for direction in DIRECTIONS:
            data = self.application_data(direction)
            out[direction] = {"bytes": len(data), "records": self.application_records(direction),
                              "base64": base64.b64encode(data).decode("ascii")}
        out["not_decrypted"] = [{"direction": d, "reason": r, "records": i} for d, r, i in self.not_decrypted()]
        out["lost"] = [{"direction": lost.direction, "before_record": lost.index, "records": lost.records}
                       for lost in self.lost]
        return out


# --- key derivation -----------------------------------------------------------

def hkdf_expand_label(algorithm: hashes.HashAlgorithm, secret: bytes, label: bytes, context: bytes,
                      length: int) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length), RFC 8446 section 7.1.

    struct { uint16 length; opaque label<7..255> = "tls13 " + Label; opaque context<0..255>; } HkdfLabel
    """
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    return HKDFExpand(algorithm=algorithm, length=length, info=info).derive(secret)


def prf(algorithm: hashes.HashAlgorithm, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """The TLS 1.2 PRF, RFC 5246 section 5: P_hash(secret, label + seed), cut to LENGTH.

    P_hash = HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ...,  A(0) = seed, A(i) = HMAC(secret, A(i-1))
    """
    def mac(data: bytes) -> bytes:
        h = hmac.HMAC(secret, algorithm)
        h.update(data)
        return h.finalize()

    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = mac(a)
        out += mac(a + seed)
    return out[:length]


@dataclass
class _Keys:
    """One direction's record protection: an AEAD, its IV and the next sequence number."""

    suite: CipherSuite
    key: bytes
    iv: bytes
    phase: str           # "handshake" or "application" (TLS 1.3), "write" (TLS 1.2): for messages
    secret: bytes = b""  # TLS 1.3 traffic secret, kept for KeyUpdate
    seq: int = 0
    opened: bool = False  # a record opened with these keys: a later failure is not the key log's fault

    aead: AESGCM | ChaCha20Poly1305 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.aead = AESGCM(self.key) if self.suite.aead == "AES-GCM" else ChaCha20Poly1305(self.key)

    def xor_nonce(self, seq: int) -> bytes:
        """IV XOR the 64-bit sequence number left-padded to the IV length (RFC 8446 5.3, RFC 7905 2)."""
        padded = seq.to_bytes(len(self.iv), "big")
        return bytes(a ^ b for a, b in zip(self.iv, padded))


def _tls13_keys(suite: CipherSuite, secret: bytes, phase: str) -> _Keys:
    """[sender]_write_key and _iv from a traffic secret, RFC 8446 section 7.3."""
    algorithm = suite.hash()
    if len(secret) != algorithm.digest_size:
        raise DecryptError(f"the key log's {phase} traffic secret is {len(secret)} bytes, but "
                           f"{suite.name} uses {algorithm.name.upper()} ({algorithm.digest_size} bytes): "
                           "wrong key log or wrong cipher suite")
    key = hkdf_expand_label(algorithm, secret, b"key", b"", suite.key_len)
    iv = hkdf_expand_label(algorithm, secret, b"iv", b"", 12)
    return _Keys(suite, key, iv, phase, secret)


def _tls12_keys(suite: CipherSuite, master_secret: bytes, client_random: bytes,
                server_random: bytes) -> dict[str, _Keys]:
    """Both directions' keys from the key block, RFC 5246 section 6.3.

    key_block = PRF(master_secret, "key expansion", server_random + client_random), split into
    client/server MAC keys (none for AEAD suites), client/server write keys, client/server IVs.
    """
    if len(master_secret) != MASTER_SECRET_LEN:
        raise DecryptError(f"the key log's CLIENT_RANDOM secret is {len(master_secret)} bytes; "
                           "a TLS 1.2 master secret is 48 bytes")
    k, v = suite.key_len, suite.fixed_iv_len
    block = prf(suite.hash(), master_secret, b"key expansion", server_random + client_random, 2 * k + 2 * v)
    client_key, server_key = block[:k], block[k:2 * k]
    client_iv, server_iv = block[2 * k:2 * k + v], block[2 * k + v:2 * k + 2 * v]
    return {"c2s": _Keys(suite, client_key, client_iv, "write"),
            "s2c": _Keys(suite, server_key, server_iv, "write")}


def master_secret_from_pre_master(suite: CipherSuite, pre_master: bytes, client_random: bytes,
                                  server_random: bytes, session_hash_input: bytes | None) -> bytes:
    """The 48-byte master secret from a pre-master secret.

    Without extended_master_secret: PRF(pre_master_secret, "master secret",
    ClientHello.random + ServerHello.random) (RFC 5246 section 8.1). With it
    (SESSION_HASH_INPUT: the handshake messages from ClientHello up to and
    including ClientKeyExchange, as sent): PRF(pre_master_secret, "extended
    master secret", Hash(messages)) (RFC 7627 sections 3 and 4). The hash is
    the suite's PRF hash.
    """
    algorithm = suite.hash()
    if session_hash_input is None:
        return prf(algorithm, pre_master, b"master secret", client_random + server_random, MASTER_SECRET_LEN)
    digest = hashes.Hash(algorithm)
    digest.update(session_hash_input)
    return prf(algorithm, pre_master, b"extended master secret", digest.finalize(), MASTER_SECRET_LEN)


# --- record decryption --------------------------------------------------------

def _open(keys: _Keys, nonce: bytes, ciphertext: bytes, aad: bytes, index: int, record: Record, seq: int) -> bytes:
    try:
        return keys.aead.decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptError(f"authentication failed on record {index} ({record.direction}, "
                           f"{keys.phase} keys, sequence number {seq}): the AEAD tag does not "
                           "match — the key log does not fit this connection or the ciphertext "
                           "was altered") from None


class _TooShort(DecryptError):
    """A record too short for its cipher: no sequence number would open it."""


class _ThisRecord(DecryptError):
    """This record cannot be decrypted, but the ones after it may be."""


def _decrypt_tls13(keys: _Keys, record: Record, index: int, seq: int) -> tuple[int, bytes]:
    """TLSCiphertext -> (real content type, content), RFC 8446 sections 5.2-5.4."""
    if len(record.fragment) < TAG_LEN + 1:
        raise _TooShort(f"record {index} ({record.direction}) is too short to be a TLS 1.3 ciphertext")
    # additional_data = opaque_type || legacy_record_version || length: the record header (5.2).
    inner = _open(keys, keys.xor_nonce(seq), record.fragment, record.header, index, record, seq)
    # TLSInnerPlaintext = content || ContentType type || uint8 zeros[length_of_padding] (5.4)
    stripped = inner.rstrip(b"\x00")
    if not stripped:
        raise _TooShort(f"record {index} ({record.direction}) decrypted to padding only, with no content type")
    return stripped[-1], stripped[:-1]


def _decrypt_tls12(keys: _Keys, record: Record, index: int, seq: int) -> bytes:
    """GenericAEADCipher -> content, RFC 5246 section 6.2.3.3 with RFC 5288 / RFC 7905 nonces."""
    if keys.suite.aead == "AES-GCM":
        # nonce = salt (4 bytes, from the key block) || nonce_explicit (8 bytes, sent), RFC 5288 section 3
        if len(record.fragment) < 8 + TAG_LEN:
            raise _TooShort(f"record {index} ({record.direction}) is too short to be an AES-GCM ciphertext")
        nonce, ciphertext = keys.iv + record.fragment[:8], record.fragment[8:]
    else:
        if len(record.fragment) < TAG_LEN:
            raise _TooShort(f"record {index} ({record.direction}) is too short to be a ChaCha20 ciphertext")
        nonce, ciphertext = keys.xor_nonce(seq), record.fragment
    # additional_data = seq_num || TLSCompressed.type || TLSCompressed.version || TLSCompressed.length
    length = len(ciphertext) - TAG_LEN
    aad = (seq.to_bytes(8, "big") + bytes([record.content_type]) + record.version.to_bytes(2, "big")
           + length.to_bytes(2, "big"))
    return _open(keys, nonce, ciphertext, aad, index, record, seq)


# How far past the expected sequence number a record after lost ones is looked for (each try is one AEAD
# open of the record), and how many records in a row may fail before a direction is given up.
SEQUENCE_SEARCH = 1024
GIVE_UP_AFTER = 16

_T = TypeVar("_T")


# --- walking a connection -----------------------------------------------------

_TLS13_LABELS = {
    ("c2s", "handshake"): "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    ("s2c", "handshake"): "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    ("c2s", "application"): "CLIENT_TRAFFIC_SECRET_0",
    ("s2c", "application"): "SERVER_TRAFFIC_SECRET_0",
}
_HELLO = {"c2s": (CLIENT_HELLO, "ClientHello"), "s2c": (SERVER_HELLO, "ServerHello")}
# RFC 8446 section 4.1.3: a ServerHello with this random is a HelloRetryRequest.
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


@dataclass
class _Handshake:
    """One full handshake's parameters, as its hellos and ClientKeyExchange give them."""

    client_random: bytes = b""
    server_random: bytes = b""
    version: int | None = None
    cipher_suite: int | None = None
    session_id: bytes = b""
    extended_master_secret: bool = False
    encrypted_pre_master: bytes = b""       # RSA key exchange: the ClientKeyExchange's EncryptedPreMasterSecret
    transcript: list[bytes] = field(default_factory=list)     # messages from ClientHello on (RFC 7627 section 3)
    session_hash_input: bytes | None = None                    # the transcript up to ClientKeyExchange
    client_hello: bool = False
    server_hello: bool = False
    offered_tls13: bool = False             # the ClientHello's supported_versions lists TLS 1.3
    early_data: bool = False                # the ClientHello announced 0-RTT early data
    retry: bool = False                     # a HelloRetryRequest came (TLS 1.3)
    fixed: bool = False                     # randoms, version and suite were given by the caller
    keys: dict[str, _Keys] | None = None    # TLS 1.2: the key block, once derived


@dataclass
class _Side:
    """One direction's progress through the connection."""

    hello: bool = False              # its ClientHello / ServerHello went by (in clear)
    keys: _Keys | None = None        # None until records are encrypted
    messages: bytes = b""            # handshake bytes not yet split into messages
    dead: str | None = None          # why the rest of this direction cannot be decrypted
    failures_in_row: int = 0
    lost: bool = False               # records may be missing before the next one: its sequence number is unknown
    early: _Keys | None = None       # TLS 1.3 client: 0-RTT keys, until EndOfEarlyData
    early_over: bool = False         # EndOfEarlyData went by, or a record no longer opened with the early keys
    pending: list[tuple[int, Record]] = field(default_factory=list)   # early data seen before the ServerHello
    sent_early_data: bool = False
    early_failure: str = ""          # why the early keys are missing


def _no_handshake(index: int, record: Record, why: str) -> DecryptError:
    name = _HELLO[record.direction][1]
    return DecryptError(f"record {index} ({record.direction}) {why}, but no {name} came before it: "
                        "the records do not include this connection's handshake")


class _Walk:
    """Decrypt one connection's records in order, following its handshakes.

    STRICT: the first record that cannot be decrypted raises DecryptError.
    Otherwise each such record is noted (Decryption.failures) and the walk
    goes on with the next.
    """

    def __init__(self, records: list[Record], keylog: KeyLog, strict: bool, first: _Handshake) -> None:
        self.records, self.keylog, self.strict = records, keylog, strict
        self.hs = first
        self.sides = {d: _Side() for d in DIRECTIONS}
        self.out = Decryption(version=first.version, cipher_suite=first.cipher_suite)

    def run(self) -> Decryption:
        for index, record in enumerate(self.records):
            if record.direction not in DIRECTIONS:
                raise DecryptError(f"record {index}: direction must be 'c2s' or 's2c', not {record.direction!r}")
            side = self.sides[record.direction]
            if side.dead is not None:
                self.out.failures.append(Failure(record.direction, index, side.dead))
                continue
            try:
                self._record(index, record, side)
            except _ThisRecord as exc:
                if self.strict:
                    raise
                self.out.failures.append(Failure(record.direction, index, str(exc)))
            except DecryptError as exc:
                if self.strict:
                    raise
                if side.keys is not None or record.content_type != CHANGE_CIPHER_SPEC:
                    self.out.failures.append(Failure(record.direction, index, str(exc)))
                side.dead = str(exc)
        self.out.plaintexts.sort(key=lambda p: p.index)      # early data is opened after the ServerHello
        self.out.failures.sort(key=lambda f: f.index)
        if not self.out.plaintexts and self.out.failures:
            self.out.error = self.out.failures[0].reason
        return self.out

    # -- one record

    def _record(self, index: int, record: Record, side: _Side) -> None:
        if record.after_gap:
            side.lost = True
            side.messages = b""          # a handshake message cut by the hole cannot be completed
        if record.missing:
            side.messages = b""
            if side.keys is not None:
                side.keys.seq += 1       # it was sealed with the next sequence number all the same
            if side.keys is not None or record.content_type == APPLICATION_DATA:
                raise _ThisRecord(f"record {index} ({record.direction}) was not captured whole: "
                                  f"{record.missing} bytes of it are missing, and a record opens only whole")
            return
        if side.keys is None:
            if not self._clear(index, record, side):
                return
        keys = side.keys
        assert keys is not None
        if keys.suite.version == TLS12:
            plain = self._open_lost(side, index, record, lambda seq: _decrypt_tls12(keys, record, index, seq))
            if plain is None:
                return
            self.out.plaintexts.append(Plaintext(record.direction, index, record.content_type, plain))
            if record.content_type == HANDSHAKE:
                self._handshake_data(record.direction, plain, index, record)
            elif record.content_type == CHANGE_CIPHER_SPEC:
                # A renegotiation's ChangeCipherSpec is itself protected by the old keys; the records after
                # it use the new handshake's (RFC 5246 section 7.1).
                try:
                    side.keys = self._tls12_keys(record.direction)
                except DecryptError as exc:
                    if self.strict:
                        raise
                    side.dead = str(exc)      # this record did decrypt; the ones after it cannot
            return
        # TLS 1.3: every protected record has outer type application_data (RFC 8446 section 5.2).
        if record.content_type == CHANGE_CIPHER_SPEC or (record.content_type == ALERT and len(record.fragment) == 2):
            return       # compatibility ChangeCipherSpec (appendix D.4); an alert sent in clear (section 6)
        if record.content_type != APPLICATION_DATA:
            raise DecryptError(f"record {index} ({record.direction}) has outer content type "
                               f"{record.content_type} after encryption began; TLS 1.3 protected "
                               "records are all type 23")
        try:
            opened = self._open_lost(side, index, record, lambda seq: _decrypt_tls13(keys, record, index, seq))
        except DecryptError:
            if (record.direction == "c2s" and keys.phase == "handshake"
                    and (side.sent_early_data or (self.hs.early_data and side.early_failure))):
                # Still 0-RTT early data (or its EndOfEarlyData), with no early keys to open it.
                raise _ThisRecord(f"record {index} (c2s) is 0-RTT early data that cannot be decrypted: "
                                  f"{side.early_failure}") from None
            raise
        if opened is None:
            return
        content_type, data = opened
        self.out.plaintexts.append(Plaintext(record.direction, index, content_type, data))
        if content_type == HANDSHAKE:
            self._tls13_handshake(side, data, index, record)

    def _clear(self, index: int, record: Record, side: _Side) -> bool:
        """A record before this direction's encryption: read it; True if it is the first protected one."""
        if record.content_type == HANDSHAKE:
            self._handshake_data(record.direction, record.fragment, index, record)
            return False
        if record.content_type == ALERT:
            return False
        version = self.hs.version
        if record.content_type == CHANGE_CIPHER_SPEC:
            if version == TLS13 or (version is None and (self.hs.retry or self.hs.offered_tls13)):
                # TLS 1.3 middlebox compatibility (RFC 8446 appendix D.4); a client sends it ahead of the
                # ServerHello after a HelloRetryRequest, or before its 0-RTT early data.
                return False
            if version is None:
                raise DecryptError(f"record {index} ({record.direction}) is a ChangeCipherSpec before any "
                                   "ServerHello: the version and the keys are unknown")
            # RFC 5246 section 7.1: the records after ChangeCipherSpec are protected, from seq 0.
            if not side.hello:
                raise _no_handshake(index, record, "is a ChangeCipherSpec")
            side.keys = self._tls12_keys(record.direction)
            return False
        if record.content_type != APPLICATION_DATA:
            raise DecryptError(f"record {index} ({record.direction}) has unknown content type "
                               f"{record.content_type}")
        if record.direction == "c2s" and side.hello and self.hs.early_data and version in (None, TLS13):
            if version is None:
                side.pending.append((index, record))     # 0-RTT: opened when the ServerHello names the suite
                side.sent_early_data = True
                return False
            if not side.early_over and self._early_keys(side) and self._early_record(index, record, side):
                return False
        if version is None and record.direction == "c2s" and side.hello:
            raise _ThisRecord(f"record {index} (c2s) is encrypted before any ServerHello, and the ClientHello "
                              "announced no early data")
        if version is not None and version not in (TLS12, TLS13) and side.hello:
            _check_version(version)          # says which version is not supported
        if version != TLS13 or not side.hello:
            raise _no_handshake(index, record, "is application data before ChangeCipherSpec"
                                if version == TLS12 else "is encrypted")
        suite = suite_for(self._suite_code(), TLS13)
        label = _TLS13_LABELS[(record.direction, "handshake")]
        side.keys = _tls13_keys(suite, self.keylog.secret(label, self.hs.client_random), "handshake")
        self.out.handshakes = max(self.out.handshakes, 1)
        return True

    def _early_data(self) -> None:
        """The ServerHello came: open the client's 0-RTT records sent before it (RFC 8446 section 4.2.10:
        early data uses the suite the server then confirms), with the CLIENT_EARLY_TRAFFIC_SECRET."""
        side = self.sides["c2s"]
        pending, side.pending = side.pending, []
        if not self._early_keys(side):
            self.out.failures += [Failure("c2s", i, f"record {i} (c2s) is 0-RTT early data that cannot be "
                                                    f"decrypted: {side.early_failure}") for i, _ in pending]
            return
        for index, record in pending:
            if not self._early_record(index, record, side):
                if self.strict:
                    raise DecryptError(f"record {index} (c2s) does not open with the 0-RTT early keys")
                self.out.failures.append(Failure("c2s", index, f"record {index} (c2s) does not open with the "
                                                               "0-RTT early keys"))

    def _early_keys(self, side: _Side) -> bool:
        """Derive the client's early keys (once): True if there are some to use."""
        if side.early is None and not side.early_failure and not side.early_over:
            try:
                if self.hs.version != TLS13:
                    raise DecryptError(f"the server chose {_version_name(self.hs.version or 0)}, not TLS 1.3")
                secret = self.keylog.secret("CLIENT_EARLY_TRAFFIC_SECRET", self.hs.client_random)
                side.early = _tls13_keys(suite_for(self._suite_code(), TLS13), secret, "early")
            except DecryptError as exc:
                if self.strict:
                    raise
                side.early_failure = str(exc)
        return side.early is not None

    def _early_record(self, index: int, record: Record, side: _Side) -> bool:
        """Open one record with the client's early keys; False if it does not open (early data is over:
        rejected by the server, or the record is the client's first under its handshake keys)."""
        keys = side.early
        assert keys is not None
        try:
            content_type, data = _decrypt_tls13(keys, record, index, keys.seq)
        except DecryptError:
            side.early, side.early_over = None, True
            return False
        keys.seq += 1
        side.sent_early_data = True
        self.out.plaintexts.append(Plaintext(record.direction, index, content_type, data))
        if content_type == HANDSHAKE and data[:1] == bytes([END_OF_EARLY_DATA]):
            side.early, side.early_over = None, True     # the client's next record is under its handshake keys
        return True

    def _suite_code(self) -> int:
        if self.hs.cipher_suite is None:
            raise DecryptError("the cipher suite is unknown: the records must include the ServerHello")
        return self.hs.cipher_suite

    # -- sequence numbers, and records lost before the capture saw them

    def _open_lost(self, side: _Side, index: int, record: Record, attempt: Callable[[int], _T]) -> _T | None:
        """ATTEMPT(seq) at the expected sequence number; after lost records, at the ones that may follow.

        Returns what ATTEMPT returned, or None for a record noted as a failure.
        """
        keys = side.keys
        assert keys is not None
        try:
            result = attempt(keys.seq)
        except _TooShort as exc:
            if self.strict:
                raise
            keys.seq += 1
            self.out.failures.append(Failure(record.direction, index, str(exc)))
            return None
        except DecryptError as exc:
            first = exc
        else:
            keys.seq += 1
            keys.opened, side.lost, side.failures_in_row = True, False, 0
            return result
        if not (keys.opened or side.lost):
            raise first      # the very first record these keys protect: the keys are wrong, not the count
        for seq in self._candidates(keys, record):
            try:
                result = attempt(seq)
            except DecryptError:
                continue
            self.out.lost.append(Lost(record.direction, index, seq - keys.seq))
            keys.seq = seq + 1
            keys.opened, side.lost, side.failures_in_row = True, False, 0
            return result
        if self.strict:
            raise first
        side.failures_in_row += 1
        side.lost = True
        keys.seq += 1            # it was a record: count it, as the sender did
        reason = (f"authentication failed with every sequence number from {keys.seq - 1} to "
                  f"{keys.seq - 1 + SEQUENCE_SEARCH}" + (": records before it were lost in a gap of the capture"
                                                          if record.after_gap else ""))
        self.out.failures.append(Failure(record.direction, index, reason))
        if side.failures_in_row >= GIVE_UP_AFTER:
            side.dead = (f"not tried: {GIVE_UP_AFTER} records in a row before it did not authenticate "
                         "with any nearby sequence number")
        return None

    @staticmethod
    def _candidates(keys: _Keys, record: Record) -> list[int]:
        """Sequence numbers to try after lost records: TLS 1.2 AES-GCM's explicit nonce first (OpenSSL,
        NSS, Go and most stacks send the sequence number there, RFC 5288 section 3), then the ones after."""
        candidates = []
        if keys.suite.version == TLS12 and keys.suite.aead == "AES-GCM":
            explicit = int.from_bytes(record.fragment[:8], "big")
            if keys.seq < explicit <= keys.seq + (1 << 32):
                candidates.append(explicit)
        candidates += [s for s in range(keys.seq + 1, keys.seq + 1 + SEQUENCE_SEARCH) if s not in candidates]
        return candidates

    # -- handshake messages

    def _handshake_data(self, direction: str, data: bytes, index: int, record: Record) -> None:
        side = self.sides[direction]
        messages, side.messages = split_handshake(side.messages + data)
        for message in messages:
            self._message(direction, message)

    def _message(self, direction: str, message: bytes) -> None:
        """Note what a handshake message says about the keys: hellos, ClientKeyExchange (RFC 5246 7.4)."""
        kind = message[0]
        if kind == HELLO_REQUEST:
            return               # not part of the handshake's transcript (RFC 5246 section 7.4.1.1)
        hs = self.hs
        if kind == CLIENT_HELLO and direction == "c2s":
            try:
                hello = parse_hello(message)
            except ValueError:
                return
            if hs.client_hello and not hs.retry:
                hs = self.hs = _Handshake()      # a renegotiation: a new handshake, under the current keys
            hs.client_hello = True
            if not hs.fixed:
                hs.client_random = hello.random
            offered = supported_versions(hello.extensions.get(EXT_SUPPORTED_VERSIONS, b""), CLIENT_HELLO)
            hs.offered_tls13 = TLS13 in offered
            hs.early_data = EXT_EARLY_DATA in hello.extensions
            self.sides["c2s"].hello = True
        elif kind == SERVER_HELLO and direction == "s2c":
            try:
                hello = parse_hello(message)
            except ValueError:
                return
            if hello.random == HELLO_RETRY_REQUEST_RANDOM:
                hs.retry = True
                return
            hs.server_hello = True
            if not hs.fixed:
                chosen = supported_versions(hello.extensions.get(EXT_SUPPORTED_VERSIONS, b""), SERVER_HELLO)
                hs.server_random = hello.random
                hs.version = chosen[0] if chosen else hello.legacy_version
                hs.cipher_suite = hello.cipher_suites[0]
                if self.out.version is None:
                    self.out.version, self.out.cipher_suite = hs.version, hs.cipher_suite
            hs.session_id = hello.session_id
            hs.extended_master_secret = EXT_EXTENDED_MASTER_SECRET in hello.extensions
            self.sides["s2c"].hello = True
            if self.sides["c2s"].pending:
                self._early_data()
        elif kind == CLIENT_KEY_EXCHANGE and direction == "c2s" and hs.session_hash_input is None:
            # RSA: EncryptedPreMasterSecret encrypted_pre_master_secret<0..2^16-1> (RFC 5246 section 7.4.7.1)
            body = message[4:]
            if len(body) >= 2 and int.from_bytes(body[:2], "big") == len(body) - 2:
                hs.encrypted_pre_master = body[2:]
            hs.transcript.append(message)
            hs.session_hash_input = b"".join(hs.transcript)
            return
        if hs.session_hash_input is None:
            hs.transcript.append(message)

    def _tls12_keys(self, direction: str) -> _Keys:
        """DIRECTION's keys from the current handshake's key block (derived once per handshake)."""
        hs = self.hs
        if hs.keys is None:
            _check_version(hs.version)
            if hs.version != TLS12:
                raise DecryptError(f"{_version_name(hs.version or 0)} has no TLS 1.2 ChangeCipherSpec")
            suite = suite_for(self._suite_code(), TLS12)
            for name, value in (("client", hs.client_random), ("server", hs.server_random)):
                if len(value) != 32:
                    raise DecryptError(f"the {name} random is {len(value)} bytes, not 32: it must come from "
                                       f"the connection's {'ClientHello' if name == 'client' else 'ServerHello'}")
            hs.keys = _tls12_keys(suite, self._master_secret(suite), hs.client_random, hs.server_random)
            self.out.handshakes += 1
        return hs.keys[direction]

    def _master_secret(self, suite: CipherSuite) -> bytes:
        """This handshake's master secret, from whichever key log entry has it (as Wireshark looks:
        session id, client random, then a pre-master secret by client random or encrypted pre-master)."""
        hs, secrets = self.hs, self.keylog.secrets
        if hs.session_id and (SESSION_ID, hs.session_id) in secrets:
            return secrets[(SESSION_ID, hs.session_id)]
        if ("CLIENT_RANDOM", hs.client_random) in secrets:
            return secrets[("CLIENT_RANDOM", hs.client_random)]
        pre_master = secrets.get(("PMS_CLIENT_RANDOM", hs.client_random))
        if pre_master is None and hs.encrypted_pre_master:
            pre_master = secrets.get(("RSA", hs.encrypted_pre_master[:8]))
        if pre_master is not None:
            if hs.extended_master_secret and hs.session_hash_input is None:
                raise DecryptError("extended_master_secret was negotiated, but no ClientKeyExchange was "
                                   "captured: the session hash (RFC 7627 section 3) cannot be computed")
            return master_secret_from_pre_master(suite, pre_master, hs.client_random, hs.server_random,
                                                 hs.session_hash_input if hs.extended_master_secret else None)
        why = _no_secrets(hs.client_random)
        if hs.encrypted_pre_master:
            why = why.replace(" (a key log", f", nor an RSA entry for its encrypted pre-master secret "
                                             f"{hs.encrypted_pre_master[:8].hex()} (a key log")
        raise DecryptError(why)

    def _tls13_handshake(self, side: _Side, data: bytes, index: int, record: Record) -> None:
        """Follow protected handshake messages: Finished and KeyUpdate change this direction's keys."""
        assert side.keys is not None
        messages, side.messages = split_handshake(side.messages + data)
        suite = side.keys.suite
        for number, message in enumerate(messages, 1):
            msg_type = message[0]
            if msg_type == FINISHED and side.keys.phase == "handshake":
                # After Finished the sender switches to its application traffic secret (RFC 8446 7.1),
                # and sequence numbers restart at 0 (5.3).
                label = _TLS13_LABELS[(record.direction, "application")]
                new = _tls13_keys(suite, self.keylog.secret(label, self.hs.client_random), "application")
            elif msg_type == KEY_UPDATE and side.keys.phase == "application":
                # application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length)
                algorithm = suite.hash()
                secret = hkdf_expand_label(algorithm, side.keys.secret, b"traffic upd", b"", algorithm.digest_size)
                new = _tls13_keys(suite, secret, "application")
            else:
                continue
            if number < len(messages) or side.messages:
                # Key changes must fall on a record boundary (RFC 8446 section 5.1).
                raise DecryptError(f"record {index} ({record.direction}) carries handshake data after a "
                                   "key change in the same record")
            side.keys = new


def _check_inputs(records: list[Record], keylog: KeyLog, version: int | None, cipher_suite_code: int,
                  client_random: bytes, server_random: bytes) -> None:
    _check_version(version)
    suite_for(cipher_suite_code, version)
    for name, value in (("client", client_random), ("server", server_random)):
        if len(value) != 32:
            raise DecryptError(f"the {name} random is {len(value)} bytes, not 32: it must come from "
                               f"the connection's {'ClientHello' if name == 'client' else 'ServerHello'}")
    if version == TLS13 and not keylog.labels(client_random):
        raise DecryptError(_no_secrets(client_random))
    for index, record in enumerate(records):
        if record.direction not in DIRECTIONS:
            raise DecryptError(f"record {index}: direction must be 'c2s' or 's2c', not {record.direction!r}")


def decrypt_connection(records: list[Record], keylog: KeyLog, *, version: int | None, cipher_suite: int,
                       client_random: bytes, server_random: bytes) -> list[Plaintext]:
    """Decrypt one connection's RECORDS (both directions, in capture order) with KEYLOG.

    VERSION (0x0303 or 0x0304), CIPHER_SUITE and the randoms of the first
    handshake come from the ClientHello and ServerHello; a renegotiation's
    come from its own (decrypted) hellos. Returns one Plaintext per decrypted
    record; records sent in clear (hellos, ChangeCipherSpec, early alerts)
    are skipped. Raises DecryptError, in one line, at the first record that
    cannot be decrypted.
    """
    _check_inputs(records, keylog, version, cipher_suite, client_random, server_random)
    first = _Handshake(client_random, server_random, version, cipher_suite, fixed=True)
    return _Walk(records, keylog, True, first).run().plaintexts


def decrypt_records(records: list[Record], keylog: KeyLog) -> Decryption:
    """Decrypt what can be decrypted of one connection's RECORDS (both directions, in capture order).

    The version, cipher suite and randoms are read from the hellos among the
    records. Never raises DecryptError: a record that cannot be decrypted is
    noted with why (Decryption.failures), and the walk goes on; when nothing
    could be decrypted, Decryption.error says why.
    """
    try:
        return _Walk(records, keylog, False, _Handshake()).run()
    except DecryptError as exc:      # a caller's mistake (a direction that is neither): said, not raised
        return Decryption(error=str(exc))
