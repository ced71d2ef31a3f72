"""Every command, each kind of bad value for each option and argument.

The kinds: empty, negative, huge, a newline, bytes that are not UTF-8, a path
to a file, a folder, something unwritable, a device. Each value that is bad
for its place must give exactly one line on stderr (`labctl...: error: ...`),
exit status 2 (bad input, as the README's table says), no traceback, and
leave nothing behind: no file in the test's folder, no container, volume or
network on the engine, no capture on the lab's wire. The commands run
against a lab that is up, so a value that slipped past the checks would do
real work and be caught here.

A kind that is a fine value in a place (a folder for `report --out`, a long
secret) is not in that place's row.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import docker
import pytest

from labctl.cli import Output, main

pytestmark = pytest.mark.integration

KINDS = ("empty", "negative", "huge", "newline", "non-utf8", "file", "folder", "unwritable", "device")


def values(tmp: Path) -> dict[str, str]:
    return {
        "empty": "",
        "negative": "-5",
        "huge": "9" * 400,
        "newline": "lab\nx",
        "non-utf8": os.fsdecode(b"\xff\xfe"),
        "file": str(tmp / "a-file"),
        "folder": str(tmp / "a-folder"),
        "unwritable": "/proc/tlslab-nowhere/x",
        "device": "/dev/null",
    }


ALL = set(KINDS)
PATHS_OK = {"negative", "non-utf8", "file"}      # names a new or existing regular file can have (not a newline)

# (row name, argv with {} where the bad value goes, env var instead of argv (or None), kinds that are bad there)
TABLE: list[tuple[str, list[str], str | None, set[str]]] = [
    ("--project", ["--project", "{}", "status"], None, ALL),
    ("--timeout", ["status", "--timeout", "{}"], None, ALL),
    ("LAB_PROJECT", ["status"], "LAB_PROJECT", ALL - {"empty"}),
    ("LAB_TIMEOUT", ["status"], "LAB_TIMEOUT", ALL - {"empty"}),
    ("LAB_HOME", ["status"], "LAB_HOME", ALL - {"empty", "folder"}),
    ("LAB_CERTS_DIR", ["certs"], "LAB_CERTS_DIR", {"huge", "newline", "file", "unwritable", "device"}),
    ("LAB_COMPOSE", ["up"], "LAB_COMPOSE", ALL - {"empty"}),
    ("LAB_COMPOSE (status)", ["status"], "LAB_COMPOSE", ALL - {"empty"}),
    ("LAB_IMAGE_PREFIX", ["up"], "LAB_IMAGE_PREFIX", ALL - {"empty"}),
    ("LAB_BASE_SOURCE", ["up"], "LAB_BASE_SOURCE", ALL - {"empty"}),
    ("LAB_PULL_FROM", ["up"], "LAB_PULL_FROM", ALL - {"empty"}),
    ("up --base-source", ["up", "--base-source", "{}"], None, ALL),
    ("up --pull-from", ["up", "--pull-from", "{}"], None, ALL),
    ("build --base-source", ["build", "--base-source", "{}"], None, ALL),
    ("logs SERVICE", ["logs", "{}"], None, ALL),
    ("logs --tail", ["logs", "--tail", "{}"], None, ALL),
    ("shell SERVICE", ["shell", "{}", "true"], None, ALL),
    ("shell --user", ["shell", "--user", "{}", "client", "true"], None, ALL),
    ("client HOST", ["client", "{}"], None, ALL),
    ("client --port", ["client", "server.lab.test", "--port", "{}"], None, ALL),
    ("client --timeout", ["client", "server.lab.test", "--timeout", "{}"], None, ALL),
    ("client --secret", ["client", "server.lab.test", "--secret", "{}"], None, {"newline", "non-utf8"}),
    ("client --path", ["client", "server.lab.test", "--path", "{}"], None, ALL - {"file", "folder", "device", "unwritable"}),
    ("client --sni", ["client", "server.lab.test", "--sni", "{}"], None, ALL),
    ("run SCENARIO", ["run", "{}"], None, ALL),
    ("run --pcap", ["run", "tls", "--pcap", "{}"], None, ALL - PATHS_OK),
    ("run --keylog", ["run", "tls", "--keylog", "{}"], None, ALL - PATHS_OK),
    ("run plaintext --keylog", ["run", "plaintext", "--keylog", "{}"], None, ALL),
    ("run all --pcap", ["run", "all", "--pcap", "{}"], None,
     {"empty", "huge", "newline", "file", "unwritable", "device"}),
    ("run --timeout", ["run", "tls", "--timeout", "{}"], None, ALL),
    ("run --pcap-format", ["run", "tls", "--pcap", "{out}/x.pcapng", "--pcap-format", "{}"], None, ALL),
    ("run verify --case", ["run", "verify", "--case", "{}"], None, ALL),
    ("run verify --client-cmd", ["run", "verify", "--client-cmd", "{}"], None, {"empty", "non-utf8"}),
    ("run verify --client-timeout", ["run", "verify", "--client-timeout", "{}"], None, ALL),
    ("analyze FILE", ["analyze", "{}"], None, ALL),
    ("stolen-key FILE", ["stolen-key", "{}", "--key", "{key}"], None, ALL),
    ("stolen-key --key", ["stolen-key", "{pcap}", "--key", "{}"], None, ALL),
    ("report SCENARIO", ["report", "{}", "--out", "{out}"], None, ALL),
    ("report --out", ["report", "tls", "--out", "{}"], None,
     {"empty", "huge", "newline", "file", "unwritable", "device"}),
    ("capture start NAME", ["capture", "start", "{}"], None, ALL),
    ("capture stop NAME", ["capture", "stop", "{}"], None, ALL),
    ("capture get --out", ["capture", "get", "never-made", "--out", "{}"], None,
     {"empty", "huge", "newline", "folder", "unwritable", "device"}),
    ("capture stop --out", ["capture", "stop", "never-made", "--out", "{}"], None,
     {"empty", "huge", "newline", "folder", "unwritable", "device"}),
    ("capture stop --keylog", ["capture", "stop", "never-made", "--out", "{out}/x.pcapng", "--keylog", "{}"], None,
     ALL),
    ("capture get unknown", ["capture", "get", "never-made{}", "--out", "{out}/x.pcap"], None, {"empty"}),
    ("capture stop unknown", ["capture", "stop", "never-made{}"], None, {"empty"}),
    ("capture ACTION", ["capture", "{}", "x"], None, ALL),
]

CASES = [(row, kind) for row, _, _, kinds in TABLE for kind in KINDS if kind in kinds]


def _engine_objects(client: docker.DockerClient, projects: set[str]) -> set[str]:
    """Containers, volumes, networks and images on the engine, leaving out those of other labs
    (compose or labctl labels naming a project not in PROJECTS): someone else's runs on the same
    engine meanwhile are not this case's leftovers."""
    def ours(labels: dict | None) -> bool:
        labels = labels or {}
        owner = labels.get("com.docker.compose.project") or labels.get("tlslab.project")
        return owner is None or owner in projects

    api = client.api                # one list call each: objects removed meanwhile are not looked up
    return ({f"container {c['Id']}" for c in api.containers(all=True) if ours(c.get("Labels"))}
            | {f"volume {v['Name']}" for v in api.volumes().get("Volumes") or [] if ours(v.get("Labels"))}
            | {f"network {n['Id']}" for n in api.networks() if ours(n.get("Labels"))}
            | {f"image {i['Id']}" for i in api.images()})


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, session_lab):
    tmp = tmp_path_factory.mktemp("bad-input")
    (tmp / "a-file").write_bytes(os.urandom(100))
    (tmp / "a-folder").mkdir()
    pcap = tmp / "empty.pcap"                # a valid capture with no packets
    pcap.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    key = Path(session_lab.env["LAB_CERTS_DIR"]) / "server" / "server-rsa.key"
    captures = {c["name"] for c in _captures(session_lab)}
    return tmp, {"pcap": str(pcap), "key": str(key), "out": str(tmp / "report-out"), "captures": captures}


@pytest.mark.parametrize("row, kind", CASES, ids=[f"{r}={k}" for r, k in CASES])
def test_each_bad_value_is_one_line_exit_2_and_leaves_nothing(row, kind, inputs, session_lab, monkeypatch, capsys):
    tmp, named = inputs
    _, argv, env_var, _ = next(t for t in TABLE if t[0] == row)
    bad = values(tmp)[kind]
    args = [bad if a == "{}" else a.replace("{}", bad).format(**named) if "{" in a else a for a in argv]
    client = docker.from_env()
    projects = {session_lab.project, bad}
    before_engine, before_files = _engine_objects(client, projects), _files(tmp)
    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as env:
        env.setenv("LAB_CERTS_DIR", session_lab.env["LAB_CERTS_DIR"])
        env.setenv("LAB_PROJECT", session_lab.project)
        if env_var:
            env.setenv(env_var, bad)
        try:
            status = main(args, Output(out, err))
        except SystemExit as exc:            # argparse's own refusals
            status = exc.code
    stderr = err.getvalue() + capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip()]
    where = f"{row} = {kind} ({bad[:40]!r}): exit {status}, stderr {stderr!r}, stdout {out.getvalue()[:200]!r}"
    assert status == 2, where
    assert len(lines) == 1 and lines[0].startswith("labctl") and "error:" in lines[0], where
    assert "Traceback" not in stderr, where
    assert _files(tmp) == before_files, f"{where}: files left behind"
    assert _engine_objects(client, projects) == before_engine, f"{where}: engine objects left behind"


def test_no_bad_value_made_a_capture(inputs, session_lab):
    """Checked once, after the table (an exec on the wire per case would double its time):
    a value that slipped through to a run would have replaced or added a capture."""
    _, named = inputs
    assert {c["name"] for c in _captures(session_lab)} == named["captures"]
    assert not [c for c in _captures(session_lab) if c["running"]]


def _captures(handle) -> list[dict]:
    from labctl import capture
    from labctl.lab import Lab

    return capture.listing(Lab(project=handle.project, certs_dir=Path(handle.env["LAB_CERTS_DIR"]), timeout=60))
