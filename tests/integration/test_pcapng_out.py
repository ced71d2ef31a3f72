"""`--pcap NAME.pcapng` on the real lab: a capture tshark opens decrypted with no options.

Each run sends a secret random for that run (the client's Cookie); it is on
the wire only encrypted, so finding it in what tshark decrypts from the file
alone proves the key log inside (the Decryption Secrets Block) is this run's
and is used. tshark is given no option at all: no key log file, no
preference. The same run with `--pcap NAME.pcap` still writes a classic pcap
that tshark cannot decrypt by itself.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from labctl.tls import pcapng
from labctl.tls.pcapfile import PCAP_MAGICS, PCAPNG_MAGIC
from tests import tshark

pytestmark = pytest.mark.integration


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def block_types(data: bytes) -> list[int]:
    return [t for _, _, _, t in pcapng._blocks(data, "test")]


def no_options(path: Path) -> dict[str, bytes]:
    """What tshark decrypts of the TLS connection to the server, with no option of any kind."""
    return tshark.decrypted_streams(path, None, stream=_tls_stream(path))


def _tls_stream(path: Path) -> int:
    rows = tshark.fields(path, "tls.handshake.type == 1", "tcp.stream")
    assert rows, f"no ClientHello in {path}"
    return int(rows[0][0])


@pytest.fixture(scope="module")
def runs(session_lab, tmp_path_factory) -> dict[str, tuple[dict, str, Path, Path]]:
    """`run tls` once with --pcap X.pcapng (and --keylog beside it), once with --pcap X.pcap."""
    folder = tmp_path_factory.mktemp("pcapng-out")
    out = {}
    for kind in ("pcapng", "pcap"):
        path, keys = folder / f"tls.{kind}", folder / f"tls-{kind}.keylog"
        result = session_lab.run("run", "tls", "--json", "--pcap", str(path), "--keylog", str(keys))
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        out[kind] = (json.loads(result.stdout), result.stderr, path, keys)
    return out


def test_run_tls_pcapng_opens_decrypted_with_no_options(runs, tmp_path):
    doc, stderr, path, keys = runs["pcapng"]
    data = path.read_bytes()
    assert data[:4] == PCAPNG_MAGIC
    assert mode(path) == 0o600
    secret = doc["secret"]
    assert secret.startswith("s3cr3t-") and secret.encode() not in data      # on the wire only encrypted
    streams = no_options(path)
    assert f"Cookie: session={secret}\r\n".encode() in streams["c2s"]
    assert streams["s2c"].startswith(b"HTTP/1.1 200 OK\r\n")
    # The key log inside is the run's own (the one --keylog saved), in a DSB before the first packet.
    assert pcapng.decryption_secrets(data) == keys.read_text()
    types = block_types(data)
    assert types[:3] == [pcapng.SHB, pcapng.DSB, pcapng.IDB] and set(types[3:]) == {pcapng.EPB}
    assert "NSS key log embedded: Wireshark and tshark open it decrypted" in stderr
    # editcap, given the same packets and key log, writes the same blocks after its section header.
    # (editcap 4.0 will not write a file holding a DSB as pcap, even with --discard-all-secrets: the DSB
    # is cut out first.)
    start, end, _, _ = pcapng._blocks(data, "ours")[1]
    stripped, plain, theirs = tmp_path / "stripped.pcapng", tmp_path / "plain.pcap", tmp_path / "editcap.pcapng"
    stripped.write_bytes(data[:start] + data[end:])
    subprocess.run(["editcap", "-F", "pcap", str(stripped), str(plain)], check=True, capture_output=True)
    subprocess.run(["editcap", "--inject-secrets", f"tls,{keys}", str(plain), str(theirs)], check=True,
                   capture_output=True)
    ours_start = pcapng._blocks(data, "ours")[0][1]
    theirs_data = theirs.read_bytes()
    assert data[ours_start:] == theirs_data[pcapng._blocks(theirs_data, "theirs")[0][1]:]


def test_run_tls_pcap_still_writes_a_classic_pcap(runs):
    doc, stderr, path, keys = runs["pcap"]
    data = path.read_bytes()
    assert data[:4] in PCAP_MAGICS
    assert mode(path) == 0o600
    assert pcapng.decryption_secrets(data) == ""
    assert no_options(path) == {"c2s": b"", "s2c": b""}              # no key log inside: nothing decrypts
    with_keys = tshark.decrypted_streams(path, keys, stream=_tls_stream(path))
    assert f"Cookie: session={doc['secret']}\r\n".encode() in with_keys["c2s"]
    assert "embedded" not in stderr


def test_a_scenario_without_a_key_log_writes_a_pcapng_and_says_it_cannot_be_decrypted(session_lab, tmp_path):
    path = tmp_path / "mitm.pcapng"
    result = session_lab.run("run", "mitm", "--pcap", str(path))
    assert result.returncode == 0, result.stderr
    assert (f"capture saved to........ {path} (no key log embedded: `run mitm` keeps no key log, so whatever "
            "TLS it holds is not decryptable from the file alone)") in result.stderr
    data = path.read_bytes()
    assert data[:4] == PCAPNG_MAGIC and mode(path) == 0o600
    assert pcapng.DSB not in block_types(data) and pcapng.decryption_secrets(data) == ""
    assert tshark.fields(path, "tls.handshake.type == 1", "tls.handshake.extensions_server_name")


def test_run_all_pcap_format_pcapng_writes_name_pcapng_each(session_lab, tmp_path):
    out = tmp_path / "all"
    result = session_lab.run("run", "all", "--pcap", str(out), "--pcap-format", "pcapng")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names and all(n.endswith(".pcapng") for n in names), names
    for name in names:
        assert mode(out / name) == 0o600
    for name in ("tls", "tls12"):                         # the scenarios that keep a key log
        data = (out / f"{name}.pcapng").read_bytes()
        assert pcapng.decryption_secrets(data).strip()
        assert b"Cookie: session=s3cr3t-" in no_options(out / f"{name}.pcapng")["c2s"]
    assert pcapng.decryption_secrets((out / "plaintext.pcapng").read_bytes()) == ""


def test_capture_stop_out_pcapng_with_the_clients_key_log(session_lab, tmp_path):
    """The manual path: a capture, a client run keeping a key log in its container, the key log copied
    out, and `capture stop --out X.pcapng --keylog K` embedding it."""
    name, secret = "pcapng-demo", "hunter2-pcapng-" + os.urandom(6).hex()
    inside = f"/tmp/{name}.keys"
    assert session_lab.run("capture", "start", name).returncode == 0
    try:
        client = session_lab.run("client", "server.lab.test", "--secret", secret, "--keylog", inside)
        assert client.returncode == 0, client.stderr
        keys = tmp_path / "keys.log"
        copy = session_lab.run("shell", "client", "cat", inside)
        assert copy.returncode == 0, copy.stderr
        keys.write_text(copy.stdout)
        session_lab.run("shell", "client", "rm", "-f", inside)
        out = tmp_path / "demo.pcapng"
        stop = session_lab.run("capture", "stop", name, "--out", str(out), "--keylog", str(keys))
        assert stop.returncode == 0, stop.stderr
    finally:
        session_lab.run("capture", "stop", name)
    assert "NSS key log embedded" in stop.stdout
    assert mode(out) == 0o600 and pcapng.decryption_secrets(out.read_bytes()) == keys.read_text()
    assert f"Cookie: session={secret}\r\n".encode() in no_options(out)["c2s"]
    again = tmp_path / "again.pcapng"
    get = session_lab.run("capture", "get", name, "--out", str(again))
    assert get.returncode == 0 and "no key log embedded: no --keylog FILE was given" in get.stdout
    assert pcapng.decryption_secrets(again.read_bytes()) == "" and no_options(again) == {"c2s": b"", "s2c": b""}


def test_the_report_writes_a_pcapng_beside_the_page(session_lab, tmp_path):
    out = tmp_path / "report"
    result = session_lab.run("report", "tls", "plaintext", "--out", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    doc = json.loads((out / "index.json").read_text())
    files = {s["scenario"]: s["files"] for s in doc["scenarios"]}
    assert files["tls"]["capture with the key log embedded"] == "tls.pcapng"
    assert "capture with the key log embedded" not in files["plaintext"]
    assert not (out / "plaintext.pcapng").exists()
    ng = out / "tls.pcapng"
    assert mode(ng) == 0o600
    decrypted = no_options(ng)
    assert b"Cookie: session=s3cr3t-" in decrypted["c2s"]
    assert decrypted == tshark.decrypted_streams(out / "tls.pcap", out / "tls.keylog",
                                                 stream=_tls_stream(out / "tls.pcap"))
    assert "<code>wireshark tls.pcapng</code>" in (out / "index.html").read_text()
