"""The attacker stole the server's private key: which recordings can they read?

This is the lab's forward-secrecy demonstration. Given a capture and the
server's RSA private key, and nothing else (no key log), it opens every TLS
1.2 session that used RSA key exchange, one step at a time, and says exactly
why the same key opens none of the ECDHE/DHE or TLS 1.3 sessions.

RSA key exchange (RFC 5246 section 7.4.7.1): the client picks a 48-byte
pre-master secret, encrypts it to the RSA key in the server's certificate
and sends it in the ClientKeyExchange message. Whoever has the private key,
today or in ten years, decrypts it from the recording; the rest is public
arithmetic: the master secret (section 8.1, or RFC 7627 section 4 with the
extended master secret), the key block (6.3), and the records. This module
does the RSA part and the master secret; labctl.tls.decrypt, given the master
secret as a one-line key log, opens the records.

(EC)DHE and TLS 1.3 (RFC 8446): the server's private key only *signs* an
ephemeral Diffie-Hellman share (ServerKeyExchange in TLS 1.2, CertificateVerify
in TLS 1.3). The shared secret comes from two ephemeral private keys that
never crossed the wire and are thrown away after the handshake, so no key,
stolen later, can rebuild it: that is forward secrecy.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed448, ed25519, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from ..errors import LabError, UsageError
from ..files import read_input, shown
from . import analyzer
from .constants import (APPLICATION_DATA, CERTIFICATE, CERTIFICATE_VERIFY, CLIENT_HELLO, CLIENT_KEY_EXCHANGE,
                        EXT_EXTENDED_MASTER_SECRET, EXT_KEY_SHARE, FFDHE_GROUPS, FINISHED, GROUPS, HANDSHAKE,
                        HELLO_REQUEST, SERVER_HELLO, SERVER_HELLO_DONE, SERVER_KEY_EXCHANGE, TLS12, TLS13,
                        version_name)
from .decrypt import (SUITES, DecryptError, KeyLog, Plaintext, application_data, captured, decrypt_connection, prf,
                      suite_for)
from .records import hello_extensions, key_shares

PRE_MASTER_LEN = 48
MASTER_LEN = 48

WRONG_KEY = ("the stolen key does not decrypt this session's pre-master secret: "
             "it is not the key of the server that took part")
NO_CLIENT_KEY_EXCHANGE = ("no ClientKeyExchange in the capture: the recording starts after the handshake, "
                          "so there is nothing for the key to open")
NO_TLS = "no TLS connection in the capture"

# TLS 1.2 SignatureAndHashAlgorithm / TLS 1.3 SignatureScheme codes for RSA (RFC 5246 7.4.1.4.1, RFC 8446
# 4.2.3): how the server signed its ephemeral share, for checking that signature with the stolen key.
_RSA_SIGNATURES: dict[int, tuple[str, type[hashes.HashAlgorithm]]] = {
    0x0201: ("pkcs1", hashes.SHA1), 0x0401: ("pkcs1", hashes.SHA256), 0x0501: ("pkcs1", hashes.SHA384),
    0x0601: ("pkcs1", hashes.SHA512),
    0x0804: ("pss", hashes.SHA256), 0x0805: ("pss", hashes.SHA384), 0x0806: ("pss", hashes.SHA512),
    0x0809: ("pss", hashes.SHA256), 0x080A: ("pss", hashes.SHA384), 0x080B: ("pss", hashes.SHA512),
}


class StolenKeyError(LabError):
    """The stolen key cannot be tried on this session (or this capture); the message says why."""


class KeyFileError(StolenKeyError, UsageError):
    """What was given as the key is not an RSA private key: bad input, exit status 2."""


EXPECTED_KEY = "an RSA private key in PEM, e.g. certs/server/server-rsa.key"
MAX_KEY_BYTES = 1 << 20       # a 16384-bit RSA key in PEM is under 13 kB


@dataclass(frozen=True)
class Step:
    """One value of the attack, with where it came from."""

    name: str        # e.g. "encrypted pre-master secret (ClientKeyExchange)"
    value: str       # the value, in full hex
    note: str        # what it is / how it was derived, one sentence


@dataclass
class Attempt:
    """The stolen key tried on one TLS connection."""

    flow: str                    # TlsConnection.flow.label
    version: int | None          # TLS12, TLS13, ...; None without a ServerHello
    cipher: str                  # cipher suite name
    key_exchange: str            # "RSA", "ECDHE", "DHE", "TLS 1.3 (ECDHE)", ...
    decrypted: bool
    reason: str                  # why it could or could not be decrypted, one sentence
    steps: list[Step] = field(default_factory=list)
    client_data: bytes = b""     # decrypted application data, client to server
    server_data: bytes = b""     # server to client

    @property
    def version_shown(self) -> str | None:
        """The version's name for text and JSON ("TLS 1.2"); None without a ServerHello."""
        return None if self.version is None else version_name(self.version)

    def to_dict(self) -> dict[str, object]:
        return {"flow": self.flow, "version": self.version_shown, "cipher": self.cipher,
                "key_exchange": self.key_exchange, "decrypted": self.decrypted, "reason": self.reason,
                "steps": [{"name": s.name, "value": s.value, "note": s.note} for s in self.steps],
                "client_data_bytes": len(self.client_data), "server_data_bytes": len(self.server_data)}


# --- the key ------------------------------------------------------------------------

with warnings.catch_warnings():
    # cryptography 46 deprecates finite-field DH; naming the class is enough to
    # warn, and a student would see that line under every `run all`.
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    _KEY_KINDS = ((ec.EllipticCurvePrivateKey, "an EC (ECDSA)"), (ed25519.Ed25519PrivateKey, "an Ed25519"),
                  (ed448.Ed448PrivateKey, "an Ed448"), (dsa.DSAPrivateKey, "a DSA"), (dh.DHPrivateKey, "a DH"))


def load_private_key(pem: bytes, name: str = "the stolen key file") -> rsa.RSAPrivateKey:
    """The RSA private key in PEM (or DER) bytes, or KeyFileError saying what the bytes are instead.

    ``name`` is how the messages name the file (its path, from read_key).
    """
    try:
        if b"-----BEGIN" in pem:
            key = serialization.load_pem_private_key(pem, password=None)
        else:
            key = serialization.load_der_private_key(pem, password=None)
    except TypeError:
        raise KeyFileError(f"{name} is encrypted with a passphrase: decrypt it first "
                           "(openssl pkey -in KEY -out PLAIN.key)") from None
    except (ValueError, UnsupportedAlgorithm):
        what = "a certificate" if b"CERTIFICATE-----" in pem else \
            "a public key" if b"PUBLIC KEY-----" in pem else "not a readable PEM or DER private key"
        raise KeyFileError(f"{name} holds no private key ({what}): give {EXPECTED_KEY}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = next((label for cls, label in _KEY_KINDS if isinstance(key, cls)), type(key).__name__)
        raise KeyFileError(f"{name} is {kind} key, not an RSA private key: only RSA key exchange "
                           f"encrypts the pre-master secret to the server's key; give {EXPECTED_KEY}")
    return key


def read_key(path: str | os.PathLike[str]) -> rsa.RSAPrivateKey:
    """The RSA private key in the file at PATH, or KeyFileError (exit 2) naming the file and what it should be.

    A folder, device, FIFO, empty file or unreadable file is refused before
    anything is read; so is a file larger than any key.
    """
    return load_private_key(read_input(path, EXPECTED_KEY, limit=MAX_KEY_BYTES, error=KeyFileError, label="--key"),
                            name=f"--key {shown(path)}")


# --- handshake messages in clear ------------------------------------------------------

@dataclass
class _Handshake:
    """The handshake messages each side sent in clear (before its ChangeCipherSpec), in stream order."""

    c2s: list[bytes]
    s2c: list[bytes]

    def first(self, direction: str, msg_type: int) -> bytes | None:
        return next((m for m in getattr(self, direction) if m[0] == msg_type), None)

    def transcript(self, last: int) -> bytes:
        """handshake_messages (RFC 5246 7.4.9) from ClientHello to the client's message of type LAST.

        The order is the protocol's, not the capture's clock: the client's ClientHello, then the
        server's flight up to ServerHelloDone, then the client's second flight (Certificate,
        ClientKeyExchange, CertificateVerify). HelloRequest is never part of it.
        """
        client = [m for m in self.c2s if m[0] != HELLO_REQUEST]
        server = [m for m in self.s2c if m[0] != HELLO_REQUEST]
        out = client[:1]
        for message in server:
            out.append(message)
            if message[0] == SERVER_HELLO_DONE:
                break
        for message in client[1:]:
            out.append(message)
            if message[0] == last:
                break
        return b"".join(out)


def _clear_handshake(connection: analyzer.TlsConnection) -> _Handshake:
    """The messages each side sent in clear (the analyzer splits them from the records)."""
    return _Handshake(connection.handshake_messages("c2s"), connection.handshake_messages("s2c"))


def _group_name(code: int) -> str:
    return GROUPS.get(code, f"group 0x{code:04x}")


# --- one connection -------------------------------------------------------------------

def _suite_name(connection: analyzer.TlsConnection) -> str:
    hello = connection.server_hello
    if hello is None:
        return ""
    suite = SUITES.get(hello.cipher_suite)
    return suite.name if suite else hello.cipher_name


def _key_exchange(connection: analyzer.TlsConnection, handshake: _Handshake) -> str:
    """The key exchange the negotiated suite (or TLS 1.3) implies."""
    if connection.version == TLS13:
        extensions = hello_extensions(handshake.first("s2c", SERVER_HELLO))
        share = extensions.get(EXT_KEY_SHARE)
        if handshake.first("s2c", SERVER_HELLO) is not None and share is None:
            return "TLS 1.3 (PSK)"
        if share and int.from_bytes(share[:2], "big") in FFDHE_GROUPS:
            return "TLS 1.3 (DHE)"
        return "TLS 1.3 (ECDHE)"
    name = _suite_name(connection)
    if name.startswith("TLS_RSA_WITH_"):
        return "RSA"
    if name.startswith("TLS_ECDHE_"):
        return "ECDHE"
    if name.startswith("TLS_DHE_"):
        return "DHE"
    if name.startswith("TLS_") and "_WITH_" in name:
        return name[4:name.index("_WITH_")].replace("_", "-")     # e.g. "ECDH-RSA", "PSK", "RSA-PSK"
    return "unknown"


def attack(connection: analyzer.TlsConnection, private_key: rsa.RSAPrivateKey) -> Attempt:
    """Try PRIVATE_KEY on one TLS connection from analyzer.analyze.

    Returns an Attempt: decrypted, with every step, for RSA key exchange; not
    decrypted, with the reason, for forward-secret sessions. Raises
    StolenKeyError when the key should open the session but cannot (wrong key,
    no handshake in the recording, unsupported suite or version).
    """
    handshake = _clear_handshake(connection)
    client_key_exchange = handshake.first("c2s", CLIENT_KEY_EXCHANGE)
    if connection.server_hello is None or connection.client_hello is None:
        if client_key_exchange is None:
            raise StolenKeyError(NO_CLIENT_KEY_EXCHANGE)
        raise StolenKeyError("no ClientHello or ServerHello in the capture: the recording starts in the middle "
                             "of the handshake, so the randoms and the cipher suite are missing")
    kx = _key_exchange(connection, handshake)
    attempt = Attempt(connection.flow.label, connection.version, _suite_name(connection), kx, False, "")
    if kx != "RSA":
        return _forward_secret(attempt, connection, handshake, private_key)
    return _rsa(attempt, connection, handshake, client_key_exchange, private_key)


def _forward_secret(attempt: Attempt, connection: analyzer.TlsConnection, handshake: _Handshake,
                    key: rsa.RSAPrivateKey) -> Attempt:
    """Why the key cannot open an (EC)DHE or TLS 1.3 session, with the public values that show it."""
    kx = attempt.key_exchange
    gone = ("the shared secret was computed from ephemeral private keys that were never sent and are gone, "
            "so the stolen key does not help")
    if kx.startswith("TLS 1.3"):
        if kx == "TLS 1.3 (PSK)":
            attempt.reason = ("TLS 1.3 has no RSA key exchange, and this session was resumed from a pre-shared "
                              "key (psk_ke, RFC 8446 section 4.2.9) agreed in an earlier, forward-secret "
                              "connection: the server's private key played no part, so the stolen key does not "
                              "help")
        else:
            attempt.reason = (f"TLS 1.3 is always forward secret (RFC 8446 has no RSA key exchange): the server's "
                              f"private key only signed the handshake, its ephemeral {kx[9:-1]} key_share "
                              f"included, in CertificateVerify (RFC 8446 section 4.4.3); {gone}")
        attempt.steps = _tls13_shares(handshake)
    elif kx in ("ECDHE", "DHE"):
        where = "RFC 8422 section 5.4" if kx == "ECDHE" else "RFC 5246 section 7.4.3"
        attempt.reason = (f"{kx} key exchange is forward secret: the server's private key only signed its "
                          f"ephemeral {kx[:-1]} share (ServerKeyExchange, {where}); {gone}")
        attempt.steps = _tls12_shares(kx, connection, handshake, key)
    else:
        attempt.reason = (f"the {kx} key exchange does not encrypt the pre-master secret to the server's RSA key "
                          "(only TLS_RSA_WITH_* suites do), so the stolen key cannot open it")
    return attempt


def _tls12_shares(kx: str, connection: analyzer.TlsConnection, handshake: _Handshake,
                  key: rsa.RSAPrivateKey) -> list[Step]:
    """The ephemeral public values of a TLS 1.2 (EC)DHE handshake, and the signature the stolen key can check."""
    steps: list[Step] = []
    server = handshake.first("s2c", SERVER_KEY_EXCHANGE)
    client = handshake.first("c2s", CLIENT_KEY_EXCHANGE)
    if server is not None:
        body = server[4:]
        try:
            if kx == "ECDHE":
                # ServerECDHParams: curve_type(1) = named_curve(3), NamedCurve(2), ECPoint point<1..255>
                group = int.from_bytes(body[1:3], "big")
                point = body[4:4 + body[3]]
                params_len = 4 + body[3]
                steps.append(Step("server's ephemeral ECDH public key (ServerKeyExchange)", point.hex(),
                                  f"the server's fresh {_group_name(group)} public point, sent in clear; its private "
                                  "half never left the server and was discarded after the handshake "
                                  "(RFC 8422 section 5.4)"))
            else:
                # ServerDHParams: dh_p<1..2^16-1>, dh_g<1..2^16-1>, dh_Ys<1..2^16-1>
                pos = 0
                values = []
                for _ in range(3):
                    n = int.from_bytes(body[pos:pos + 2], "big")
                    values.append(body[pos + 2:pos + 2 + n])
                    pos += 2 + n
                params_len = pos
                steps.append(Step("server's ephemeral DH public value Ys (ServerKeyExchange)", values[2].hex(),
                                  f"g^Xs mod p for a fresh secret Xs, over a {len(values[0]) * 8}-bit prime, sent in "
                                  "clear; Xs never left the server and was discarded (RFC 5246 section 7.4.3)"))
            steps.append(_signature_step(body[:params_len], body[params_len:], connection, key))
        except (IndexError, ValueError):
            pass
    if client is not None:
        body = client[4:]
        value = body[1:1 + body[0]] if kx == "ECDHE" and body else body[2:]
        steps.append(Step(f"client's ephemeral {kx[:-1]} public key (ClientKeyExchange)", value.hex(),
                          "the client's fresh public share, sent in clear; with the server's it gives the "
                          "pre-master secret only to someone holding one of the two ephemeral private keys "
                          "(RFC 8422 section 5.7, RFC 5246 section 8.1.2)"))
    return steps


def _signature_step(params: bytes, signed: bytes, connection: analyzer.TlsConnection,
                    key: rsa.RSAPrivateKey) -> Step:
    """Check the ServerKeyExchange signature with the stolen key's public half (RFC 5246 7.4.3).

    The signature covers client_random + server_random + the ephemeral parameters.
    """
    scheme = int.from_bytes(signed[:2], "big")
    signature = signed[4:4 + int.from_bytes(signed[2:4], "big")]
    assert connection.client_hello is not None and connection.server_hello is not None
    message = connection.client_hello.random + connection.server_hello.random + params
    name = "server's signature over its ephemeral share (ServerKeyExchange)"
    kind = _RSA_SIGNATURES.get(scheme)
    if kind is None:
        return Step(name, signature.hex(), f"signature scheme 0x{scheme:04x} is not RSA: the server signed with "
                                           "another kind of key, so this is not even its key")
    pad, algorithm = kind
    chosen = (padding.PKCS1v15() if pad == "pkcs1"
              else padding.PSS(mgf=padding.MGF1(algorithm()), salt_length=padding.PSS.DIGEST_LENGTH))
    try:
        key.public_key().verify(signature, message, chosen, algorithm())
    except InvalidSignature:
        return Step(name, signature.hex(), "does NOT verify with the stolen key's public half: the stolen key is "
                                           "not this server's key (and would not help even if it were)")
    return Step(name, signature.hex(), "verifies with the stolen key's public half: it is the right key, yet it "
                                       "only signed the ephemeral share, it did not encrypt any secret "
                                       "(RFC 5246 section 7.4.3)")


def _tls13_shares(handshake: _Handshake) -> list[Step]:
    """The key_share values of a TLS 1.3 handshake (RFC 8446 section 4.2.8)."""
    steps: list[Step] = []
    server = hello_extensions(handshake.first("s2c", SERVER_HELLO)).get(EXT_KEY_SHARE, b"")
    if len(server) < 4:
        return steps                    # no share, or a HelloRetryRequest's bare group
    group, share = key_shares(server, SERVER_HELLO)[0]
    client = hello_extensions(handshake.first("c2s", CLIENT_HELLO)).get(EXT_KEY_SHARE, b"")
    for kind, value in key_shares(client, CLIENT_HELLO):
        if kind == group:
            steps.append(Step(f"client's ephemeral {_group_name(group)} key_share (ClientHello)", value.hex(),
                              "the client's fresh public share, in clear; its private half was discarded after "
                              "the handshake (RFC 8446 section 4.2.8)"))
    steps.append(Step(f"server's ephemeral {_group_name(group)} key_share (ServerHello)", share.hex(),
                      "the server's fresh public share, in clear; everything after ServerHello is encrypted under "
                      "keys derived from the (EC)DHE secret of the two shares (RFC 8446 section 7.1)"))
    return steps


def _rsa(attempt: Attempt, connection: analyzer.TlsConnection, handshake: _Handshake,
         client_key_exchange: bytes | None, key: rsa.RSAPrivateKey) -> Attempt:
    """Open an RSA key exchange session: pre-master, master secret, keys, records."""
    client_hello, server_hello = connection.client_hello, connection.server_hello
    assert client_hello is not None and server_hello is not None
    if server_hello.version != TLS12:
        raise StolenKeyError(f"this {version_name(server_hello.version)} session used RSA key exchange, which the "
                             "stolen key would open, but only TLS 1.2 key schedules are implemented here")
    try:
        suite = suite_for(server_hello.cipher_suite, TLS12)
    except DecryptError as exc:
        raise StolenKeyError(f"this session used RSA key exchange, which the stolen key would open, but {exc}") \
            from None
    if client_key_exchange is None:
        if handshake.first("s2c", SERVER_HELLO) is not None and handshake.first("s2c", CERTIFICATE) is None:
            raise StolenKeyError("no ClientKeyExchange in this connection: the session was resumed (abbreviated "
                                 "handshake, RFC 5246 section 7.3), so its master secret was agreed in an earlier "
                                 "connection; open that one")
        raise StolenKeyError(NO_CLIENT_KEY_EXCHANGE)

    client_random, server_random = client_hello.random, server_hello.random
    steps = [
        Step("client random (ClientHello)", client_random.hex(),
             "32 bytes the client sent in clear in its ClientHello (RFC 5246 section 7.4.1.2)"),
        Step("server random (ServerHello)", server_random.hex(),
             "32 bytes the server sent in clear in its ServerHello (RFC 5246 section 7.4.1.3)"),
    ]

    # ClientKeyExchange: msg_type(1) length(3) { EncryptedPreMasterSecret: opaque<0..2^16-1> }
    body = client_key_exchange[4:]
    length = int.from_bytes(body[:2], "big")
    if len(body) < 2 or length != len(body) - 2:
        raise StolenKeyError(f"the ClientKeyExchange is malformed: its vector length says {length} bytes but "
                             f"{max(len(body) - 2, 0)} follow")
    encrypted = body[2:]
    steps.append(Step("encrypted pre-master secret (ClientKeyExchange)", encrypted.hex(),
                      f"the {len(encrypted)}-byte EncryptedPreMasterSecret: the client encrypted the pre-master "
                      "secret to the RSA key in the server's certificate with PKCS #1 v1.5 and sent it in clear "
                      "(RFC 5246 section 7.4.7.1)"))

    pre_master = _decrypt_pre_master(key, encrypted, client_hello.legacy_version)
    steps.append(Step("pre-master secret", pre_master.hex(),
                      f"RSA-decrypted with the stolen private key: 48 bytes, the client's offered version "
                      f"0x{client_hello.legacy_version:04x} then 46 random bytes (RFC 5246 section 7.4.7.1)"))

    algorithm = suite.hash()
    ems = (EXT_EXTENDED_MASTER_SECRET in hello_extensions(handshake.first("c2s", CLIENT_HELLO))
           and EXT_EXTENDED_MASTER_SECRET in hello_extensions(handshake.first("s2c", SERVER_HELLO)))
    if ems:
        digest = hashes.Hash(algorithm)
        digest.update(handshake.transcript(CLIENT_KEY_EXCHANGE))
        session_hash = digest.finalize()
        steps.append(Step("session hash", session_hash.hex(),
                          f"{algorithm.name.upper()} of every handshake message from ClientHello to "
                          "ClientKeyExchange, both sides, as sent in clear (RFC 7627 section 3): both hellos "
                          "carried extended_master_secret"))
        master = prf(algorithm, pre_master, b"extended master secret", session_hash, MASTER_LEN)
        steps.append(Step("master secret", master.hex(),
                          f"PRF(pre_master_secret, \"extended master secret\", session_hash)[0..47] with "
                          f"{algorithm.name.upper()} (RFC 7627 section 4, RFC 5246 section 5)"))
    else:
        master = prf(algorithm, pre_master, b"master secret", client_random + server_random, MASTER_LEN)
        steps.append(Step("master secret", master.hex(),
                          f"PRF(pre_master_secret, \"master secret\", ClientHello.random + ServerHello.random)"
                          f"[0..47] with {algorithm.name.upper()} (RFC 5246 sections 8.1 and 5)"))

    # The key block, shown for the reader; labctl.tls.decrypt derives the same keys itself from the master secret.
    k, v = suite.key_len, suite.fixed_iv_len
    block = prf(algorithm, master, b"key expansion", server_random + client_random, 2 * k + 2 * v)
    steps.append(Step("key block", block.hex(),
                      "PRF(master_secret, \"key expansion\", server_random + client_random), cut into the write "
                      "keys and IVs; AEAD suites have no MAC keys (RFC 5246 section 6.3)"))
    for name, value in (("client_write_key", block[:k]), ("server_write_key", block[k:2 * k]),
                        ("client_write_IV", block[2 * k:2 * k + v]), ("server_write_IV", block[2 * k + v:])):
        what = ("implicit nonce salt, RFC 5288 section 3" if name.endswith("IV") and v == 4
                else "nonce mask, RFC 7905 section 2" if name.endswith("IV") else f"{suite.aead} key")
        steps.append(Step(name, value.hex(), f"{len(value)} bytes of the key block ({what})"))

    records = captured(connection.records)
    try:
        plaintexts = decrypt_connection(records, KeyLog({("CLIENT_RANDOM", client_random): master}),
                                        version=TLS12, cipher_suite=suite.code, client_random=client_random,
                                        server_random=server_random)
    except DecryptError as exc:
        if re.search(r"authentication failed .* sequence number 0\)", str(exc)):
            # The very first encrypted record of a side (its Finished) does not open: the keys are wrong,
            # so the pre-master secret only looked right (implicit rejection, see _decrypt_pre_master).
            raise StolenKeyError(WRONG_KEY) from None
        raise StolenKeyError(f"the master secret was recovered, but the records cannot be opened: {exc}") from None
    if not plaintexts:
        raise StolenKeyError("the master secret was recovered, but the capture ends with the handshake: "
                             "there is no encrypted record to open, nor to confirm the key with")

    finished = _finished_step(plaintexts, handshake, algorithm, master)
    if finished is not None:
        steps.append(finished)
    attempt.client_data = application_data(plaintexts, "c2s")
    attempt.server_data = application_data(plaintexts, "s2c")
    first = next((p for p in plaintexts if p.content_type == APPLICATION_DATA and p.data), None)
    if first is not None:
        steps.append(Step(f"first application data record, decrypted ({first.direction})", first.data.hex(),
                          f"record {first.index} opened with {suite.aead} under the "
                          f"{'client' if first.direction == 'c2s' else 'server'}_write_key, its tag verified "
                          f"(RFC 5246 section 6.2.3.3): it begins {_preview(first.data)}"))
    attempt.steps = steps
    attempt.decrypted = True
    if attempt.client_data:
        attempt.reason = (f"RSA key exchange: the pre-master secret crossed the wire encrypted to the server's key, "
                          f"so the stolen key recovers it and every key after it ({len(attempt.client_data)} bytes "
                          f"from the client, {len(attempt.server_data)} from the server decrypted)")
    else:
        attempt.reason = ("RSA key exchange: the stolen key recovers the pre-master secret and the records "
                          "authenticate under the keys derived from it, but the client sent no application data")
    return attempt


def _decrypt_pre_master(key: rsa.RSAPrivateKey, encrypted: bytes, client_version: int) -> bytes:
    """RSAES-PKCS1-v1_5 decryption, then the checks a wrong key fails (RFC 5246 section 7.4.7.1).

    OpenSSL 3.2+ uses implicit rejection: a wrong key gives random bytes of random length rather
    than an error, so the 48-byte length and the version prefix are the real test (and, after
    them, the AEAD tags of the records).
    """
    if len(encrypted) != (key.key_size + 7) // 8:
        raise StolenKeyError(WRONG_KEY)
    try:
        pre_master = key.decrypt(encrypted, padding.PKCS1v15())
    except ValueError:
        raise StolenKeyError(WRONG_KEY) from None
    if len(pre_master) != PRE_MASTER_LEN or int.from_bytes(pre_master[:2], "big") != client_version:
        raise StolenKeyError(WRONG_KEY)
    return pre_master


def _finished_step(plaintexts: list[Plaintext], handshake: _Handshake, algorithm: hashes.HashAlgorithm,
                   master: bytes) -> Step | None:
    """The client's Finished, checked: verify_data = PRF(master_secret, "client finished",
    Hash(handshake_messages))[0..11] (RFC 5246 section 7.4.9)."""
    first = next((p for p in plaintexts if p.direction == "c2s"), None)
    if first is None or first.content_type != HANDSHAKE or first.data[:1] != bytes([FINISHED]):
        return None
    verify_data = first.data[4:]
    digest = hashes.Hash(algorithm)
    digest.update(handshake.transcript(CERTIFICATE_VERIFY))
    expected = prf(algorithm, master, b"client finished", digest.finalize(), len(verify_data))
    if expected == verify_data:
        note = ("the client's first encrypted record; equal to PRF(master_secret, \"client finished\", "
                "Hash(handshake_messages))[0..11], so the master secret is this session's (RFC 5246 section 7.4.9)")
    else:
        note = ("the client's first encrypted record; it does not equal PRF(master_secret, \"client finished\", "
                "Hash(handshake_messages)) over the handshake as recorded (messages missing from the capture?)")
    return Step("client Finished verify_data, decrypted", verify_data.hex(), note)


def _preview(data: bytes, limit: int = 40) -> str:
    text = data[:limit].decode("ascii", "replace")
    shown = "".join(c if c.isprintable() else "." for c in text)
    return repr(shown + ("…" if len(data) > limit else ""))


# --- a whole capture -----------------------------------------------------------------------

def attack_files(pcap_path: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> list[Attempt]:
    """`labctl stolen-key FILE --key KEY`: the key is read and checked first (it is small),
    then the capture (its header first; see analyzer.read_capture). Bad input of
    either kind is a UsageError (exit 2); a key that opens nothing is not."""
    key = read_key(key_path)
    return _attack_observation(analyzer.analyze(analyzer.read_capture(pcap_path), name=shown(pcap_path)), key)


def attack_capture(pcap: bytes, private_key_pem: bytes) -> list[Attempt]:
    """Try the stolen key on every TLS connection in PCAP; one Attempt each.

    A connection the key cannot be tried on becomes a not-decrypted Attempt
    carrying the reason. TCP connections that carry TLS records but whose
    recording starts after the handshake are listed too (the analyzer does not
    count them as TLS with no hellos). StolenKeyError when there
    is no TLS at all, or when the key file is not an RSA private key.
    """
    return _attack_observation(analyzer.analyze(pcap), load_private_key(private_key_pem))


def _attack_observation(observation: analyzer.Observation, key: rsa.RSAPrivateKey) -> list[Attempt]:
    attempts: list[Attempt] = []
    for connection in observation.tls:
        try:
            attempts.append(attack(connection, key))
        except StolenKeyError as exc:
            attempts.append(Attempt(connection.flow.label, connection.version, _suite_name(connection),
                                    _key_exchange_or_unknown(connection), False, str(exc)))
    if not attempts:
        raise StolenKeyError(NO_TLS)
    return attempts


def _key_exchange_or_unknown(connection: analyzer.TlsConnection) -> str:
    if connection.server_hello is None:
        return "unknown"
    return _key_exchange(connection, _clear_handshake(connection))
