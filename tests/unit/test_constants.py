"""labctl.tls.constants: the lab's names for TLS numbers are Wireshark's (and the RFCs').

tshark prints its own tables with `tshark -G values`; every number the lab
names must carry the same name there (up to spelling: "Client Hello" is
ClientHello, "Handshake Failure" is handshake_failure).
"""

from __future__ import annotations

import functools
import re
import ssl
import subprocess

import pytest

from labctl.tls import constants
from labctl.tls.constants import (ALERTS, CONTENT_TYPES, EXTENSIONS, GROUPS, HANDSHAKE_TYPES, TLS12, TLS13, VERSIONS,
                                  alert_name, cipher_suite_name, handshake_name, version_name)
from tests import tshark


@functools.cache
def tshark_tables() -> dict[str, list[dict[int, str]]]:
    """Each field's value tables, in tshark's order (a field may have several: SSLv2 and TLS handshake types)."""
    out = subprocess.run([tshark.require(), "-G", "values"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    tables: dict[str, list[dict[int, str]]] = {}
    previous = None
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or parts[0] != "V" or not parts[1].startswith("tls."):
            previous = None
            continue
        _, name, value, text = parts
        if name != previous:
            tables.setdefault(name, []).append({})
            previous = name
        tables[name][-1][int(value, 0)] = text
    return tables


def tshark_table(field: str, containing: int) -> dict[int, str]:
    return next(t for t in tshark_tables()[field] if containing in t)


def squashed(name: str) -> str:
    return re.sub(r"[\s_]", "", name.removesuffix("_RESERVED")).lower()


@pytest.mark.parametrize("field, ours, containing", [
    ("tls.record.content_type", CONTENT_TYPES, 23),
    ("tls.handshake.type", HANDSHAKE_TYPES, 20),          # the TLS table, not SSLv2's
    ("tls.alert_message.desc", ALERTS, 40),
    ("tls.handshake.extension.type", EXTENSIONS, 51),
    ("tls.handshake.extensions_supported_group", GROUPS, 0x1D),
    ("tls.record.version", VERSIONS, TLS13),
])
def test_names_are_tsharks(field, ours, containing):
    theirs = tshark_table(field, containing)
    shared = set(ours) & set(theirs)
    assert len(shared) >= len(ours) - 1          # message_hash (254) is the one name tshark has no entry for
    assert {code: squashed(ours[code]) for code in shared} == {code: squashed(theirs[code]) for code in shared}


def test_versions_are_pythons_ssl_codes():
    assert {v.value: version_name(v.value) for v in ssl.TLSVersion if v.value > 0} == VERSIONS
    assert (TLS12, TLS13) == (ssl.TLSVersion.TLSv1_2.value, ssl.TLSVersion.TLSv1_3.value)


def test_unknown_numbers_are_shown_as_numbers():
    assert version_name(0x1234) == "0x1234"
    assert handshake_name(99) == "handshake 99"
    assert alert_name(199) == "199"
    assert constants.group_name(0x11EC) == "0x11ec"
    assert constants.extension_name(0xABCD) == "0xabcd"
    assert constants.content_type_name(99) == "unknown(99)"


def test_tls13_drafts_are_named_as_tshark_names_them():
    """A TLS 1.3 draft's version (0x7f00 + its number; Facebook's 0xfb17, 0xfb1a) is TLS 1.3, named by its draft."""
    theirs = {code: name for code, name in tshark_table("tls.handshake.version", TLS13).items()
              if code >> 8 in (0x7F, 0xFB)}
    assert len(theirs) >= 15
    assert {code: version_name(code) for code in theirs} == theirs
    assert all(constants.is_tls13(code) for code in theirs) and constants.is_tls13(TLS13)
    assert not constants.is_tls13(TLS12) and constants.tls13_draft(TLS13) is None
    assert (constants.tls13_draft(0x7F12), constants.tls13_draft(0xFB1A)) == (18, 26)


def test_null_cipher_macs_are_the_suites_hmacs():
    """Every TLS_*_WITH_NULL_* suite of the registry has the MAC dpkt's table gives it; no other suite is NULL."""
    import dpkt.ssl_ciphersuites
    for code, suite in dpkt.ssl_ciphersuites.BY_CODE.items():
        expected = suite.mac_size if "_WITH_NULL_" in suite.name else None
        assert constants.null_cipher_mac_length(code) == expected, suite.name
    assert constants.null_cipher_mac_length(0x003B) == 32 and constants.null_cipher_mac_length(0xC010) == 20
    assert constants.null_cipher_mac_length(0x1301) is None and constants.null_cipher_mac_length(0xFEFE) is None


def test_cipher_suites_carry_their_iana_names():
    assert cipher_suite_name(0x1301) == "TLS_AES_128_GCM_SHA256"
    assert cipher_suite_name(0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert cipher_suite_name(0x0A0A) == "GREASE"
    assert cipher_suite_name(0xFEFE) == "Unknown"
