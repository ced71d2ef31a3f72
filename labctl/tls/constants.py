"""The protocol's numbers and their names: one table of each, for the whole lab.

The numbers are TLS's own, from the IANA "Transport Layer Security (TLS)
Parameters" registry (https://www.iana.org/assignments/tls-parameters) and
the RFCs it cites; the names are the RFCs' (RFC 8446 section 4 and appendix
B for TLS 1.3, RFC 5246 for TLS 1.2), which is also what Wireshark's
dissector calls them. Code keeps numbers; the *_name functions turn one
into words only where it is shown (text, HTML, JSON).

The lab's service programs (services/client, services/server) have small
version tables of their own: each image is built from its own folder and
cannot import labctl.
"""

from __future__ import annotations

import dpkt.ssl_ciphersuites

# -- protocol versions ---------------------------------------------------------------------
# ProtocolVersion (RFC 8446 section 4.1.2 and appendix B.3.1, RFC 5246 appendix A.1). A TLS 1.3
# handshake still says 0x0303 in legacy_version; the real version is in supported_versions (4.2.1).

SSL30 = 0x0300
TLS10 = 0x0301
TLS11 = 0x0302
TLS12 = 0x0303
TLS13 = 0x0304

VERSIONS: dict[int, str] = {SSL30: "SSL 3.0", TLS10: "TLS 1.0", TLS11: "TLS 1.1", TLS12: "TLS 1.2",
                            TLS13: "TLS 1.3"}


def version_name(code: int) -> str:
    """'TLS 1.3' for 0x0304, and so on; a TLS 1.3 draft as Wireshark names it ('TLS 1.3 (draft 28)' for
    0x7f1c); a code no version has is shown in hex ('0x1234')."""
    if code in VERSIONS:
        return VERSIONS[code]
    draft = tls13_draft(code)
    if draft is not None:
        return f"TLS 1.3 ({'Facebook ' if code >> 8 == 0xFB else ''}draft {draft})"
    return f"0x{code:04x}"


# The drafts of TLS 1.3 named their version 0x7f00 + the draft's number (draft-ietf-tls-tls13-18 is
# 0x7f12); Facebook's Fizz sent 0xfb17 and 0xfb1a for its drafts 23 and 26. Wireshark reads each as TLS 1.3.
FACEBOOK_DRAFTS = {0xFB17: 23, 0xFB1A: 26}
# Up to draft 21 the ServerHello had no legacy_session_id_echo and no compression method, and put the
# draft's version in its version field; draft 22 gave it TLS 1.2's layout (legacy_version 0x0303, the
# version in supported_versions) so that middleboxes would let it through.
LAST_DRAFT_WITH_OWN_LAYOUT = 21


def tls13_draft(code: int) -> int | None:
    """The TLS 1.3 draft a version code names (18 for 0x7f12, 26 for Facebook's 0xfb1a), else None."""
    if code >> 8 == 0x7F:
        return code & 0xFF
    return FACEBOOK_DRAFTS.get(code)


def is_tls13(code: int) -> bool:
    """Whether a negotiated version is TLS 1.3 or one of its drafts (the record layer of RFC 8446
    section 5: everything after the ServerHello travels as application_data)."""
    return code == TLS13 or tls13_draft(code) is not None


# -- record layer: content types -----------------------------------------------------------
# ContentType (RFC 8446 section 5.1, RFC 5246 section 6.2.1; heartbeat: RFC 6520).

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
HEARTBEAT = 24

CONTENT_TYPES: dict[int, str] = {CHANGE_CIPHER_SPEC: "change_cipher_spec", ALERT: "alert", HANDSHAKE: "handshake",
                                 APPLICATION_DATA: "application_data", HEARTBEAT: "heartbeat"}


def content_type_name(code: int) -> str:
    """'handshake' for 22, and so on; an unknown type as 'unknown(N)'."""
    return CONTENT_TYPES.get(code, f"unknown({code})")


# -- handshake message types ---------------------------------------------------------------
# HandshakeType (RFC 8446 section 4 and appendix B.3, RFC 5246 section 7.4; IANA TLS HandshakeType).
# The names are the messages' struct names in the RFCs.

HELLO_REQUEST = 0            # TLS 1.2 only (RFC 5246 7.4.1.1)
CLIENT_HELLO = 1
SERVER_HELLO = 2
NEW_SESSION_TICKET = 4       # RFC 8446 4.6.1; RFC 5077 for TLS 1.2
END_OF_EARLY_DATA = 5
HELLO_RETRY_REQUEST = 6      # TLS 1.3 drafts up to 21 only: RFC 8446 4.1.3 made it a ServerHello (see below)
ENCRYPTED_EXTENSIONS = 8
CERTIFICATE = 11
SERVER_KEY_EXCHANGE = 12     # TLS 1.2 only
CERTIFICATE_REQUEST = 13
SERVER_HELLO_DONE = 14       # TLS 1.2 only
CERTIFICATE_VERIFY = 15
CLIENT_KEY_EXCHANGE = 16     # TLS 1.2 only
FINISHED = 20
CERTIFICATE_STATUS = 22      # RFC 6066 section 8
KEY_UPDATE = 24              # TLS 1.3 only (RFC 8446 4.6.3)
COMPRESSED_CERTIFICATE = 25  # RFC 8879
MESSAGE_HASH = 254           # RFC 8446 4.4.1: stands in for ClientHello1 after a HelloRetryRequest

HANDSHAKE_TYPES: dict[int, str] = {
    HELLO_REQUEST: "HelloRequest", CLIENT_HELLO: "ClientHello", SERVER_HELLO: "ServerHello",
    HELLO_RETRY_REQUEST: "HelloRetryRequest",
    NEW_SESSION_TICKET: "NewSessionTicket", END_OF_EARLY_DATA: "EndOfEarlyData",
    ENCRYPTED_EXTENSIONS: "EncryptedExtensions", CERTIFICATE: "Certificate",
    SERVER_KEY_EXCHANGE: "ServerKeyExchange", CERTIFICATE_REQUEST: "CertificateRequest",
    SERVER_HELLO_DONE: "ServerHelloDone", CERTIFICATE_VERIFY: "CertificateVerify",
    CLIENT_KEY_EXCHANGE: "ClientKeyExchange", FINISHED: "Finished", CERTIFICATE_STATUS: "CertificateStatus",
    KEY_UPDATE: "KeyUpdate", COMPRESSED_CERTIFICATE: "CompressedCertificate", MESSAGE_HASH: "message_hash",
}


# RFC 8446 4.1.3: a ServerHello whose random is this value (SHA-256 of "HelloRetryRequest") is a
# HelloRetryRequest: the server asks for another ClientHello (a key share in another group, a cookie).
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def handshake_name(code: int) -> str:
    """'ClientHello' for 1, and so on; an unknown type as 'handshake N'."""
    return HANDSHAKE_TYPES.get(code, f"handshake {code}")


# -- alerts --------------------------------------------------------------------------------
# AlertLevel and AlertDescription (RFC 8446 section 6, RFC 5246 section 7.2; IANA TLS Alerts).
# The _RESERVED ones are TLS 1.2 alerts that TLS 1.3 retired; old peers still send some of them.

ALERT_LEVELS: dict[int, str] = {1: "warning", 2: "fatal"}

ALERTS: dict[int, str] = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed_RESERVED",
    22: "record_overflow", 30: "decompression_failure_RESERVED", 40: "handshake_failure",
    41: "no_certificate_RESERVED", 42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
    45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error", 60: "export_restriction_RESERVED",
    70: "protocol_version", 71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 100: "no_renegotiation_RESERVED", 109: "missing_extension", 110: "unsupported_extension",
    111: "certificate_unobtainable_RESERVED", 112: "unrecognized_name", 113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value_RESERVED", 115: "unknown_psk_identity", 116: "certificate_required",
    120: "no_application_protocol",
}


def alert_level_name(code: int) -> str:
    """'warning' or 'fatal'; anything else is 'unknown'."""
    return ALERT_LEVELS.get(code, "unknown")


def alert_name(code: int) -> str:
    """'handshake_failure' for 40, and so on; an unknown description as its number."""
    return ALERTS.get(code, str(code))


# -- hello extensions ----------------------------------------------------------------------
# ExtensionType (RFC 8446 section 4.2, IANA TLS ExtensionType Values), with the RFC that defines each.

EXT_SERVER_NAME = 0                    # RFC 6066 section 3
EXT_STATUS_REQUEST = 5                 # RFC 6066 section 8
EXT_SUPPORTED_GROUPS = 10              # RFC 8422 section 5.1.1, RFC 8446 4.2.7 (was elliptic_curves)
EXT_EC_POINT_FORMATS = 11              # RFC 8422 section 5.1.2
EXT_SIGNATURE_ALGORITHMS = 13          # RFC 8446 4.2.3
EXT_ALPN = 16                          # application_layer_protocol_negotiation, RFC 7301
EXT_SIGNED_CERTIFICATE_TIMESTAMP = 18  # RFC 6962
EXT_PADDING = 21                       # RFC 7685
EXT_ENCRYPT_THEN_MAC = 22              # RFC 7366
EXT_EXTENDED_MASTER_SECRET = 23        # RFC 7627
EXT_COMPRESS_CERTIFICATE = 27          # RFC 8879
EXT_RECORD_SIZE_LIMIT = 28             # RFC 8449
EXT_SESSION_TICKET = 35                # RFC 5077
EXT_PRE_SHARED_KEY = 41                # RFC 8446 4.2.11
EXT_EARLY_DATA = 42                    # RFC 8446 4.2.10
EXT_SUPPORTED_VERSIONS = 43            # RFC 8446 4.2.1
EXT_COOKIE = 44                        # RFC 8446 4.2.2
EXT_PSK_KEY_EXCHANGE_MODES = 45        # RFC 8446 4.2.9
EXT_CERTIFICATE_AUTHORITIES = 47       # RFC 8446 4.2.4
EXT_POST_HANDSHAKE_AUTH = 49           # RFC 8446 4.2.6
EXT_SIGNATURE_ALGORITHMS_CERT = 50     # RFC 8446 4.2.3
EXT_KEY_SHARE = 51                     # RFC 8446 4.2.8
EXT_RENEGOTIATION_INFO = 0xFF01        # RFC 5746
EXT_ENCRYPTED_CLIENT_HELLO = 0xFE0D    # draft-ietf-tls-esni: the SNI and the rest, encrypted (ECH)

EXTENSIONS: dict[int, str] = {
    EXT_SERVER_NAME: "server_name", EXT_STATUS_REQUEST: "status_request", EXT_SUPPORTED_GROUPS: "supported_groups",
    EXT_EC_POINT_FORMATS: "ec_point_formats", EXT_SIGNATURE_ALGORITHMS: "signature_algorithms",
    EXT_ALPN: "application_layer_protocol_negotiation",
    EXT_SIGNED_CERTIFICATE_TIMESTAMP: "signed_certificate_timestamp", EXT_PADDING: "padding",
    EXT_ENCRYPT_THEN_MAC: "encrypt_then_mac", EXT_EXTENDED_MASTER_SECRET: "extended_master_secret",
    EXT_COMPRESS_CERTIFICATE: "compress_certificate", EXT_RECORD_SIZE_LIMIT: "record_size_limit",
    EXT_SESSION_TICKET: "session_ticket",
    EXT_PRE_SHARED_KEY: "pre_shared_key", EXT_EARLY_DATA: "early_data", EXT_SUPPORTED_VERSIONS: "supported_versions",
    EXT_COOKIE: "cookie", EXT_PSK_KEY_EXCHANGE_MODES: "psk_key_exchange_modes",
    EXT_CERTIFICATE_AUTHORITIES: "certificate_authorities", EXT_POST_HANDSHAKE_AUTH: "post_handshake_auth",
    EXT_SIGNATURE_ALGORITHMS_CERT: "signature_algorithms_cert", EXT_KEY_SHARE: "key_share",
    EXT_RENEGOTIATION_INFO: "renegotiation_info", EXT_ENCRYPTED_CLIENT_HELLO: "encrypted_client_hello",
}


def extension_name(code: int) -> str:
    """'key_share' for 51, and so on; an unknown extension in hex."""
    return EXTENSIONS.get(code, f"0x{code:04x}")


# -- named groups --------------------------------------------------------------------------
# NamedGroup (RFC 8446 section 4.2.7; RFC 8422 for the curves, RFC 7919 for the ffdhe groups).

GROUPS: dict[int, str] = {
    0x0017: "secp256r1", 0x0018: "secp384r1", 0x0019: "secp521r1", 0x001D: "x25519", 0x001E: "x448",
    0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096", 0x0103: "ffdhe6144", 0x0104: "ffdhe8192",
}
FFDHE_GROUPS = range(0x0100, 0x0200)     # RFC 7919 section 2 / RFC 8446 4.2.7: finite-field groups


def group_name(code: int) -> str:
    """'x25519' for 0x001d, and so on; an unknown group in hex."""
    return GROUPS.get(code, f"0x{code:04x}")


# -- cipher suites -------------------------------------------------------------------------
# CipherSuite (RFC 8446 appendix B.4, RFC 5246 appendix A.5, IANA TLS Cipher Suites). dpkt
# carries the whole IANA registry; its names are the registry's. The suites the lab can
# decrypt, with their key sizes and hashes, are in labctl.tls.decrypt.SUITES.

def explicit_nonce_length(version: int, cipher_suite: int) -> int:
    """How many bytes in clear open each protected record's fragment, before the ciphertext.

    TLS 1.2 AES-GCM (RFC 5288 section 3) and AES-CCM (RFC 6655 section 3)
    send an 8-byte explicit nonce; CBC suites an explicit IV of the block
    size (RFC 5246 section 6.2.3.2: 16 bytes for AES, 8 for 3DES). TLS 1.2
    ChaCha20-Poly1305 (RFC 7905 section 2) and every TLS 1.3 suite (RFC 8446
    section 5.3) derive the nonce from the sequence number and send none.
    """
    name = cipher_suite_name(code=cipher_suite)
    if version != 0x0303 or "CHACHA20" in name or "_WITH_" not in name:
        return 0
    if "_GCM" in name or "_CCM" in name:
        return 8
    if "_CBC" in name:
        return 8 if "3DES" in name else 16
    return 0


# The MAC that follows the content of each protected record under a NULL cipher (RFC 5246 6.2.3.1,
# GenericStreamCipher), by the hash that ends the suite's name: HMAC-MD5, HMAC-SHA1, HMAC-SHA256/384.
NULL_CIPHER_MACS = {"MD5": 16, "SHA": 20, "SHA256": 32, "SHA384": 48, "NULL": 0}


def null_cipher_mac_length(cipher_suite: int) -> int | None:
    """For a suite that does not encrypt (TLS_*_WITH_NULL_*: its records carry the content in clear,
    then a MAC), the MAC's length in bytes; None for every suite that encrypts, and for an unknown one."""
    name = cipher_suite_name(cipher_suite)
    if "_WITH_NULL_" not in name:
        return None
    return NULL_CIPHER_MACS.get(name.rsplit("_", 1)[1])


def cipher_suite_name(code: int) -> str:
    """'TLS_AES_128_GCM_SHA256' for 0x1301, and so on (GREASE values are 'GREASE'); 'Unknown' otherwise."""
    suite = dpkt.ssl_ciphersuites.BY_CODE.get(code)
    return suite.name if suite is not None else "Unknown"
