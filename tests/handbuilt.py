"""TLS handshakes no library sends any more, built byte by byte and written as captures.

OpenSSL no longer speaks the drafts of TLS 1.3, nor sends a certificate it
cannot read; these inputs hold what real peers once sent (and some still send):

- hand_tls13_drafts.pcap: three connections. Draft 18 (0x7f12), with a
  HelloRetryRequest of the drafts' own type 6 (version, extensions: no cipher
  suite before draft 19) and a ServerHello in the drafts' own layout (version,
  random, cipher suite, extensions: no session id, no compression method);
  draft 21 (0x7f15), the last draft with that layout; draft 22 (0x7f16),
  the first with TLS 1.2's layout and the version in supported_versions.
- hand_tls12_bad_certs.pcap: a TLS 1.2 handshake whose Certificate message
  holds four certificates: one of X.509 version 4 (cryptography refuses the
  version), a good one, one whose issuer Name has a BER long-form length
  (not DER), and 41 bytes that are no certificate at all.

The encrypted records are random bytes of the right sizes: nothing here is
ever decrypted. Make the files again with `python -m tests.handbuilt FOLDER`
(random keys, ports and sequence numbers: the bytes differ each time, what
tshark reports of the handshakes does not).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests import synth

CLIENT_HELLO, SERVER_HELLO, HELLO_RETRY_REQUEST, CERTIFICATE, SERVER_HELLO_DONE = 1, 2, 6, 11, 14
CLIENT_KEY_EXCHANGE, FINISHED = 16, 20
CCS, HANDSHAKE, APPLICATION_DATA = 20, 22, 23
SERVER_NAME, SUPPORTED_GROUPS, SIGNATURE_ALGORITHMS, SUPPORTED_VERSIONS, KEY_SHARE = 0, 10, 13, 43, 51
X25519, SECP256R1 = 0x001D, 0x0017


def vector(size: int, data: bytes) -> bytes:
    """A length-prefixed vector: SIZE bytes of length, then DATA."""
    return len(data).to_bytes(size, "big") + data


def extension(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def handshake(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + vector(3, body)


def record(content_type: int, fragment: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", content_type, version, len(fragment)) + fragment


def random_bytes(label: str, n: int = 32) -> bytes:
    """Fixed 'random' values, so that the expected values of the tests can name them."""
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{len(out)}".encode()).digest()
    return out[:n]


def client_hello(label: str, versions: list[int], share_group: int, host: str) -> bytes:
    share = os.urandom(65) if share_group == SECP256R1 else os.urandom(32)
    exts = (extension(SERVER_NAME, vector(2, b"\x00" + vector(2, host.encode())))
            + extension(SUPPORTED_GROUPS, vector(2, struct.pack("!HH", X25519, SECP256R1)))
            + extension(SIGNATURE_ALGORITHMS, vector(2, struct.pack("!HH", 0x0403, 0x0804)))
            + extension(SUPPORTED_VERSIONS, vector(1, b"".join(struct.pack("!H", v) for v in versions)))
            + extension(KEY_SHARE, vector(2, struct.pack("!H", share_group) + vector(2, share))))
    body = (struct.pack("!H", 0x0303) + random_bytes(label) + vector(1, random_bytes(label + "/sid"))
            + vector(2, struct.pack("!HH", 0x1301, 0x1302)) + vector(1, b"\x00") + vector(2, exts))
    return handshake(CLIENT_HELLO, body)


def encrypted_flight(sizes: list[int]) -> bytes:
    return b"".join(record(APPLICATION_DATA, os.urandom(n)) for n in sizes)


def draft_connections() -> list[list[tuple[str, bytes]]]:
    """The three draft connections, as (direction, bytes) chunks."""
    x25519_share = extension(KEY_SHARE, struct.pack("!H", X25519) + vector(2, os.urandom(32)))
    # Draft 18: HelloRetryRequest (type 6: server_version, extensions), then a ServerHello in the drafts' layout.
    hrr = handshake(HELLO_RETRY_REQUEST, struct.pack("!H", 0x7F12)
                    + vector(2, extension(KEY_SHARE, struct.pack("!H", X25519))))
    sh18 = handshake(SERVER_HELLO, struct.pack("!H", 0x7F12) + random_bytes("sh18") + struct.pack("!H", 0x1301)
                     + vector(2, x25519_share))
    draft18 = [("c2s", record(HANDSHAKE, client_hello("ch18a", [0x7F12], SECP256R1, "draft18.wirelab.test"), 0x0301)),
               ("s2c", record(HANDSHAKE, hrr)),
               ("c2s", record(HANDSHAKE, client_hello("ch18b", [0x7F12], X25519, "draft18.wirelab.test"))),
               ("s2c", record(HANDSHAKE, sh18) + encrypted_flight([36, 620, 98, 69])),
               ("c2s", encrypted_flight([69, 60])),
               ("s2c", encrypted_flight([210, 77]))]
    # Draft 21: the last with the drafts' layout, no HelloRetryRequest.
    sh21 = handshake(SERVER_HELLO, struct.pack("!H", 0x7F15) + random_bytes("sh21") + struct.pack("!H", 0x1302)
                     + vector(2, x25519_share))
    draft21 = [("c2s", record(HANDSHAKE, client_hello("ch21", [0x7F15], X25519, "draft21.wirelab.test"), 0x0301)),
               ("s2c", record(HANDSHAKE, sh21) + encrypted_flight([36, 620, 98, 85])),
               ("c2s", encrypted_flight([85, 60])),
               ("s2c", encrypted_flight([210, 77]))]
    # Draft 22: TLS 1.2's layout (session id echo, compression method), the version in supported_versions,
    # and the compatibility ChangeCipherSpec records.
    sh22 = handshake(SERVER_HELLO, struct.pack("!H", 0x0303) + random_bytes("sh22")
                     + vector(1, random_bytes("ch22/sid")) + struct.pack("!HB", 0x1301, 0)
                     + vector(2, extension(SUPPORTED_VERSIONS, struct.pack("!H", 0x7F16)) + x25519_share))
    draft22 = [("c2s", record(HANDSHAKE, client_hello("ch22", [0x7F16, 0x0303], X25519, "draft22.wirelab.test"),
                              0x0301)),
               ("s2c", record(HANDSHAKE, sh22) + record(CCS, b"\x01") + encrypted_flight([36, 620, 98, 69])),
               ("c2s", record(CCS, b"\x01") + encrypted_flight([69, 60])),
               ("s2c", encrypted_flight([210, 77]))]
    return [draft18, draft21, draft22]


# -- certificates cryptography refuses -------------------------------------------------------

def _certificate(common_name: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wirelab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x0BAD0000 + len(common_name)).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def _tlv(tag: int, content: bytes, long_form: bool = False) -> bytes:
    """One DER element; LONG_FORM writes a length under 128 the BER way (0x81 n), which DER forbids."""
    n = len(content)
    if n < 128 and not long_form:
        return bytes([tag, n]) + content
    size = max(1, (n.bit_length() + 7) // 8)
    return bytes([tag, 0x80 | size]) + n.to_bytes(size, "big") + content


def _elements(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, contents) of the DER elements one after another in DATA."""
    out, pos = [], 0
    while pos < len(data):
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if first & 0x80:
            size = first & 0x7F
            length = int.from_bytes(data[pos:pos + size], "big")
            pos += size
        else:
            length = first
        out.append((tag, data[pos:pos + length]))
        pos += length
    return out


def version_4(der: bytes) -> bytes:
    """The certificate with its version field saying v4 (INTEGER 3): X.509 has no such version."""
    assert der.count(b"\xa0\x03\x02\x01\x02") == 1
    return der.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x03")


def ber_issuer(der: bytes) -> bytes:
    """The certificate with its issuer Name's length in BER long form (its other lengths are DER)."""
    [(_, cert)] = _elements(der)
    (_, tbs), *rest = _elements(cert)
    fields = _elements(tbs)
    # version, serial, signature, issuer...: the issuer is the fourth field.
    rebuilt = b"".join(_tlv(tag, content, long_form=(i == 3)) for i, (tag, content) in enumerate(fields))
    return _tlv(0x30, _tlv(0x30, rebuilt) + b"".join(_tlv(tag, content) for tag, content in rest))


def bad_certificate_chain() -> list[bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    return [version_4(_certificate("v4.wirelab.test", key)), _certificate("good.wirelab.test", key),
            ber_issuer(_certificate("ber.wirelab.test", key)), b"this is no certificate: it is ASCII text."]


def bad_certificates_connection() -> list[tuple[str, bytes]]:
    chain = bad_certificate_chain()
    hello = client_hello("ch-bad", [0x0303], X25519, "good.wirelab.test")
    server_hello = handshake(SERVER_HELLO, struct.pack("!H", 0x0303) + random_bytes("sh-bad") + vector(1, b"")
                             + struct.pack("!HB", 0xC02B, 0) + vector(2, b""))
    certificate = handshake(CERTIFICATE, vector(3, b"".join(vector(3, c) for c in chain)))
    flight = record(HANDSHAKE, server_hello + certificate + handshake(SERVER_HELLO_DONE, b""))
    key_exchange = handshake(CLIENT_KEY_EXCHANGE, vector(1, b"\x04" + os.urandom(64)))
    return [("c2s", record(HANDSHAKE, hello)), ("s2c", flight),
            ("c2s", record(HANDSHAKE, key_exchange) + record(CCS, b"\x01") + record(HANDSHAKE, os.urandom(40))),
            ("s2c", record(CCS, b"\x01") + record(HANDSHAKE, os.urandom(40))),
            ("c2s", encrypted_flight([45])), ("s2c", encrypted_flight([61]))]


def write(path: Path, connections: list[list[tuple[str, bytes]]]) -> None:
    """Each connection as its own TCP connection (synth.write_pcap), one after the other in PATH (mergecap -a)."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for n, chunks in enumerate(connections):
            part = Path(tmp) / f"{n}.pcap"
            synth.write_pcap(part, (synth.CLIENT_IP, 40000 + n), (synth.SERVER_IP, 443), chunks)
            parts.append(str(part))
        subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(path), *parts], check=True)


def main(folder: Path) -> None:
    write(folder / "hand_tls13_drafts.pcap", draft_connections())
    write(folder / "hand_tls12_bad_certs.pcap", [bad_certificates_connection()])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/captures"))
