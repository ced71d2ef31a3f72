"""Decrypt captured TLS records with the client's NSS key log.

This is the lab's proof that "the ciphertext on the wire is the message":
given the TLS records of one connection, as parsed from a capture, and the
key log the client wrote (SSLKEYLOGFILE / --keylog), recover the plaintext.

The key schedule is written out here on purpose, from the RFCs, so it can be
read next to them; `cryptography` supplies only the primitives (AES-GCM,
ChaCha20-Poly1305, HMAC, HKDF-Expand).

- TLS 1.3 (RFC 8446): the key log holds the handshake and application
  traffic secrets; each becomes a key and an IV with HKDF-Expand-Label
  (section 7.1, 7.3), each record's nonce is the IV XOR its sequence number
  (5.3), the additional data is the record header (5.2), and the plaintext
  ends with the real content type followed by zero padding (5.4).
- TLS 1.2 (RFC 5246, 5288, 7905): the key log holds the master secret; the
  PRF (section 5) turns it into the key block (6.3), from which come the
  write keys and IVs. AES-GCM records carry an 8-byte explicit nonce after a
  4-byte implicit salt (RFC 5288 section 3); ChaCha20-Poly1305 records use
  IV XOR sequence number as in TLS 1.3 (RFC 7905 section 2). The additional
  data is seq_num || type || version || length (RFC 5246 section 6.2.3.3).

Only AEAD suites are supported; 0-RTT early data and TLS 1.2 renegotiation
are not. This module imports only the standard library, `cryptography`, and the
protocol's constants and message splitting (labctl.tls.constants, .records).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .constants import (ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, CLIENT_HELLO, FINISHED, HANDSHAKE, KEY_UPDATE,
                        SERVER_HELLO, TLS12, TLS13, VERSIONS, cipher_suite_name)
from .records import split_handshake

DIRECTIONS = ("c2s", "s2c")
TAG_LEN = 16


class DecryptError(Exception):
    """The records cannot be decrypted; the message says why, in one line."""


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
        raise DecryptError(f"cipher suite 0x{code:04X} is not supported: only the AEAD suites "
                           f"{', '.join(f'0x{c:04X}' for c in SUITES)} can be decrypted")
    if version is not None and suite.version != version:
        raise DecryptError(f"cipher suite 0x{code:04X} ({suite.name}) belongs to "
                           f"{_version_name(suite.version)}, not {_version_name(version)}")
    return suite


def _version_name(version: int) -> str:
    return VERSIONS.get(version, f"version 0x{version:04X}")    # this module's messages say "version 0x7F1C"


# --- the key log --------------------------------------------------------------

# NSS key log format: "<LABEL> <client_random hex> <secret hex>", one per line,
# '#' starts a comment. https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/
_KEYLOG_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)\s+([0-9A-Fa-f]+)\s+([0-9A-Fa-f]+)$")


@dataclass(frozen=True)
class KeyLog:
    """Secrets from an NSS key log, by (label, client_random)."""

    secrets: dict[tuple[str, bytes], bytes] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> KeyLog:
        """Read NSS key log TEXT; comments and blank lines are ignored, bad lines raise DecryptError."""
        secrets: dict[tuple[str, bytes], bytes] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = _KEYLOG_LINE.match(line)
            if match is None or len(match[2]) % 2 or len(match[3]) % 2:
                shown = line if len(line) <= 40 else line[:37] + "..."
                raise DecryptError(f"key log line {number} is not in NSS key log format "
                                   f"(LABEL CLIENT_RANDOM SECRET, in hex): {shown!r}")
            label, random, secret = match[1], bytes.fromhex(match[2]), bytes.fromhex(match[3])
            if label != "RSA" and len(random) != 32:   # "RSA" lines key on 8 bytes of the encrypted PMS
                raise DecryptError(f"key log line {number}: the client random must be 32 bytes, "
                                   f"not {len(random)}")
            secrets[(label, random)] = secret
        return cls(secrets)

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

    @property
    def header(self) -> bytes:
        return bytes([self.content_type]) + self.version.to_bytes(2, "big") + len(self.fragment).to_bytes(2, "big")


@dataclass(frozen=True)
class Plaintext:
    direction: str
    index: int           # index of the record in the input list
    content_type: int    # inner/real content type (23 application data, 22 handshake, 21 alert)
    data: bytes


def application_data(plaintexts: list[Plaintext], direction: str) -> bytes:
    """DIRECTION's application data (content type 23), concatenated in record order."""
    return b"".join(p.data for p in plaintexts if p.direction == direction and p.content_type == APPLICATION_DATA)


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

    aead: AESGCM | ChaCha20Poly1305 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.aead = AESGCM(self.key) if self.suite.aead == "AES-GCM" else ChaCha20Poly1305(self.key)

    def xor_nonce(self) -> bytes:
        """IV XOR the 64-bit sequence number left-padded to the IV length (RFC 8446 5.3, RFC 7905 2)."""
        padded = self.seq.to_bytes(len(self.iv), "big")
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
    if len(master_secret) != 48:
        raise DecryptError(f"the key log's CLIENT_RANDOM secret is {len(master_secret)} bytes; "
                           "a TLS 1.2 master secret is 48 bytes")
    k, v = suite.key_len, suite.fixed_iv_len
    block = prf(suite.hash(), master_secret, b"key expansion", server_random + client_random, 2 * k + 2 * v)
    client_key, server_key = block[:k], block[k:2 * k]
    client_iv, server_iv = block[2 * k:2 * k + v], block[2 * k + v:2 * k + 2 * v]
    return {"c2s": _Keys(suite, client_key, client_iv, "write"),
            "s2c": _Keys(suite, server_key, server_iv, "write")}


# --- record decryption --------------------------------------------------------

def _open(keys: _Keys, nonce: bytes, ciphertext: bytes, aad: bytes, index: int, record: Record) -> bytes:
    try:
        return keys.aead.decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptError(f"authentication failed on record {index} ({record.direction}, "
                           f"{keys.phase} keys, sequence number {keys.seq}): the AEAD tag does not "
                           "match — the key log does not fit this connection or the ciphertext "
                           "was altered") from None


def _decrypt_tls13(keys: _Keys, record: Record, index: int) -> tuple[int, bytes]:
    """TLSCiphertext -> (real content type, content), RFC 8446 sections 5.2-5.4."""
    if len(record.fragment) < TAG_LEN + 1:
        raise DecryptError(f"record {index} ({record.direction}) is too short to be a TLS 1.3 ciphertext")
    # additional_data = opaque_type || legacy_record_version || length: the record header (5.2).
    inner = _open(keys, keys.xor_nonce(), record.fragment, record.header, index, record)
    keys.seq += 1
    # TLSInnerPlaintext = content || ContentType type || uint8 zeros[length_of_padding] (5.4)
    stripped = inner.rstrip(b"\x00")
    if not stripped:
        raise DecryptError(f"record {index} ({record.direction}) decrypted to padding only, with no content type")
    return stripped[-1], stripped[:-1]


def _decrypt_tls12(keys: _Keys, record: Record, index: int) -> bytes:
    """GenericAEADCipher -> content, RFC 5246 section 6.2.3.3 with RFC 5288 / RFC 7905 nonces."""
    if keys.suite.aead == "AES-GCM":
        # nonce = salt (4 bytes, from the key block) || nonce_explicit (8 bytes, sent), RFC 5288 section 3
        if len(record.fragment) < 8 + TAG_LEN:
            raise DecryptError(f"record {index} ({record.direction}) is too short to be an AES-GCM ciphertext")
        nonce, ciphertext = keys.iv + record.fragment[:8], record.fragment[8:]
    else:
        if len(record.fragment) < TAG_LEN:
            raise DecryptError(f"record {index} ({record.direction}) is too short to be a ChaCha20 ciphertext")
        nonce, ciphertext = keys.xor_nonce(), record.fragment
    # additional_data = seq_num || TLSCompressed.type || TLSCompressed.version || TLSCompressed.length
    length = len(ciphertext) - TAG_LEN
    aad = (keys.seq.to_bytes(8, "big") + bytes([record.content_type]) + record.version.to_bytes(2, "big")
           + length.to_bytes(2, "big"))
    plain = _open(keys, nonce, ciphertext, aad, index, record)
    keys.seq += 1
    return plain


# --- walking a connection -----------------------------------------------------

_TLS13_LABELS = {
    ("c2s", "handshake"): "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    ("s2c", "handshake"): "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    ("c2s", "application"): "CLIENT_TRAFFIC_SECRET_0",
    ("s2c", "application"): "SERVER_TRAFFIC_SECRET_0",
}
_HELLO = {"c2s": (CLIENT_HELLO, "ClientHello"), "s2c": (SERVER_HELLO, "ServerHello")}


@dataclass
class _Side:
    """One direction's progress through the connection."""

    hello: bool = False              # its ClientHello / ServerHello went by (in clear)
    keys: _Keys | None = None        # None until records are encrypted
    messages: bytes = b""            # TLS 1.3: handshake bytes not yet split into messages


def _no_handshake(index: int, record: Record, why: str) -> DecryptError:
    name = _HELLO[record.direction][1]
    return DecryptError(f"record {index} ({record.direction}) {why}, but no {name} came before it: "
                        "the records do not include this connection's handshake")


def _check_inputs(records: list[Record], keylog: KeyLog, version: int | None, cipher_suite_code: int,
                  client_random: bytes, server_random: bytes) -> CipherSuite:
    if not version:
        raise DecryptError("the TLS version is unknown: the records must include the connection's "
                           "handshake (ClientHello and ServerHello)")
    if version not in (TLS12, TLS13):
        raise DecryptError(f"{_version_name(version)} is not supported: only TLS 1.2 and TLS 1.3 "
                           "AEAD suites can be decrypted")
    suite = suite_for(cipher_suite_code, version)
    for name, value in (("client", client_random), ("server", server_random)):
        if len(value) != 32:
            raise DecryptError(f"the {name} random is {len(value)} bytes, not 32: it must come from "
                               f"the connection's {'ClientHello' if name == 'client' else 'ServerHello'}")
    if not keylog.labels(client_random):
        raise DecryptError(_no_secrets(client_random))
    for index, record in enumerate(records):
        if record.direction not in DIRECTIONS:
            raise DecryptError(f"record {index}: direction must be 'c2s' or 's2c', not {record.direction!r}")
    return suite


def decrypt_connection(records: list[Record], keylog: KeyLog, *, version: int | None, cipher_suite: int,
                       client_random: bytes, server_random: bytes) -> list[Plaintext]:
    """Decrypt one connection's RECORDS (both directions, in capture order) with KEYLOG.

    VERSION (0x0303 or 0x0304), CIPHER_SUITE and the randoms come from the
    ClientHello and ServerHello. Returns one Plaintext per decrypted record;
    records sent in clear (hellos, ChangeCipherSpec, early alerts) are skipped.
    """
    suite = _check_inputs(records, keylog, version, cipher_suite, client_random, server_random)
    sides = {d: _Side() for d in DIRECTIONS}
    tls12_keys: dict[str, _Keys] | None = None
    out: list[Plaintext] = []

    for index, record in enumerate(records):
        side = sides[record.direction]
        if side.keys is None:
            # Records in clear, before this direction's first protected record.
            if record.content_type == HANDSHAKE:
                if not side.hello and record.fragment[:1] == bytes([_HELLO[record.direction][0]]):
                    side.hello = True
                continue
            if record.content_type == ALERT:
                continue
            if version == TLS12 and record.content_type == CHANGE_CIPHER_SPEC:
                # RFC 5246 section 7.1: the records after ChangeCipherSpec are protected, from seq 0.
                if not side.hello:
                    raise _no_handshake(index, record, "is a ChangeCipherSpec")
                if tls12_keys is None:
                    tls12_keys = _tls12_keys(suite, keylog.secret("CLIENT_RANDOM", client_random),
                                             client_random, server_random)
                side.keys = tls12_keys[record.direction]
                continue
            if record.content_type == CHANGE_CIPHER_SPEC:
                continue     # TLS 1.3 middlebox compatibility (RFC 8446 appendix D.4)
            if record.content_type != APPLICATION_DATA:
                raise DecryptError(f"record {index} ({record.direction}) has unknown content type "
                                   f"{record.content_type}")
            if version == TLS12:
                raise _no_handshake(index, record, "is application data before ChangeCipherSpec")
            if not side.hello:
                raise _no_handshake(index, record, "is encrypted")
            label = _TLS13_LABELS[(record.direction, "handshake")]
            side.keys = _tls13_keys(suite, keylog.secret(label, client_random), "handshake")

        if version == TLS12:
            if record.content_type == CHANGE_CIPHER_SPEC:
                raise DecryptError(f"record {index} ({record.direction}) is a second ChangeCipherSpec: "
                                   "TLS 1.2 renegotiation is not supported")
            out.append(Plaintext(record.direction, index, record.content_type,
                                 _decrypt_tls12(side.keys, record, index)))
            continue

        # TLS 1.3: every protected record has outer type application_data (RFC 8446 section 5.2).
        if record.content_type == CHANGE_CIPHER_SPEC:
            continue
        if record.content_type != APPLICATION_DATA:
            raise DecryptError(f"record {index} ({record.direction}) has outer content type "
                               f"{record.content_type} after encryption began; TLS 1.3 protected "
                               "records are all type 23")
        try:
            content_type, data = _decrypt_tls13(side.keys, record, index)
        except DecryptError:
            if (record.direction == "c2s" and side.keys.phase == "handshake"
                    and ("CLIENT_EARLY_TRAFFIC_SECRET", client_random) in keylog.secrets):
                raise DecryptError(f"record {index} (c2s) does not open with the client handshake "
                                   "keys; this connection sent 0-RTT early data, which is not "
                                   "supported") from None
            raise
        out.append(Plaintext(record.direction, index, content_type, data))
        if content_type == HANDSHAKE:
            _tls13_handshake(side, data, keylog, suite, client_random, index, record)
    return out


def _tls13_handshake(side: _Side, data: bytes, keylog: KeyLog, suite: CipherSuite, client_random: bytes,
                     index: int, record: Record) -> None:
    """Follow protected handshake messages: Finished and KeyUpdate change this direction's keys."""
    assert side.keys is not None
    messages, side.messages = split_handshake(side.messages + data)
    for number, message in enumerate(messages, 1):
        msg_type = message[0]
        if msg_type == FINISHED and side.keys.phase == "handshake":
            # After Finished the sender switches to its application traffic secret (RFC 8446 7.1),
            # and sequence numbers restart at 0 (5.3).
            label = _TLS13_LABELS[(record.direction, "application")]
            new = _tls13_keys(suite, keylog.secret(label, client_random), "application")
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
