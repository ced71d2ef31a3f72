"""tshark as the independent oracle: the lab's analyzer and decryptor must agree with it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def require() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed (.ci/run installs it from Debian's packages)")
    return path


def fields(pcap: Path, display_filter: str, *names: str, options: tuple[str, ...] = ()) -> list[list[str]]:
    """Rows of `tshark -T fields` for packets matching display_filter."""
    argv = [require(), "-r", str(pcap), "-n", *options, "-Y", display_filter, "-T", "fields",
            "-E", "separator=|", *[a for name in names for a in ("-e", name)]]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def records(pcap: Path, server_port: int = 443) -> dict[str, list[tuple[int, int]]]:
    """(content type, length) of every TLS record, per direction, in stream order."""
    out: dict[str, list[tuple[int, int]]] = {"c2s": [], "s2c": []}
    rows = fields(pcap, "tls.record", "tcp.srcport", "tls.record.content_type", "tls.record.opaque_type",
                  "tls.record.length")
    for src, clear, opaque, lengths in rows:
        direction = "s2c" if int(src) == server_port else "c2s"
        # TLS 1.3 records after ServerHello carry their outer type in opaque_type;
        # within one packet the clear ones (handshake, change_cipher_spec) come first.
        types = [int(t) for t in (clear.split(",") if clear else []) + (opaque.split(",") if opaque else [])]
        out[direction] += list(zip(types, map(int, lengths.split(","))))
    return out


def follow_records(pcap: Path, keylog: Path | None, stream: int = 0, server_port: int = 443,
                      rsa_key: Path | None = None, options: tuple[str, ...] = ()) -> dict[str, list[bytes]]:
    """What tshark decrypts with the key log, one entry per record: `-z follow,tls,raw` per direction.

    Lines of "Node 0" are flush left, the other node's start with a tab. Which
    node is the server varies (tshark 4.0 names the server first for TLS 1.3),
    so the "Node 0:" line decides.
    """
    secrets = ["-o", f"tls.keylog_file:{keylog}"] if keylog else []
    if rsa_key:
        # tshark 4.0: RSA keys for RSA key exchange live in the rsa_keys table (file, password).
        secrets += ["-o", f'uat:rsa_keys:"{rsa_key}",""']
    for option in options:
        secrets += ["-o", option]
    argv = [require(), "-r", str(pcap), "-n", *secrets, "-q", "-z", f"follow,tls,raw,{stream}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    data: dict[str, list[bytes]] = {"c2s": [], "s2c": []}
    node0_is_server = False
    for line in out.splitlines():
        if line.startswith("Node 0:"):
            node0_is_server = line.rsplit(":", 1)[1].strip() == str(server_port)
            continue
        text = line.strip()
        if not text or set(text) == {"="} or ":" in text:
            continue
        node0 = not line.startswith("\t")
        direction = "s2c" if node0 == node0_is_server else "c2s"
        data[direction].append(bytes.fromhex(text))
    return data


def decrypted_streams(pcap: Path, keylog: Path | None, stream: int = 0, server_port: int = 443,
                      rsa_key: Path | None = None, options: tuple[str, ...] = ()) -> dict[str, bytes]:
    """What tshark decrypts with the key log, each direction's records joined (see follow_records)."""
    return {d: b"".join(records) for d, records in follow_records(pcap, keylog, stream, server_port, rsa_key,
                                                                 options).items()}
