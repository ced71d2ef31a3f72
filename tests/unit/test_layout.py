"""The layout holds: each fact and each risky step has one home, and the modules say so.

These read labctl's own source (ast, no Docker): a second copy of the owner-only
write, or a second module that runs `compose up`, fails here before it drifts
from the first.
"""

from __future__ import annotations

import ast
import os
import types
from pathlib import Path

from labctl import capture, certs, files, report

PACKAGE = Path(capture.__file__).resolve().parent


def modules() -> dict[str, ast.Module]:
    """Every module of labctl (scenarios included), by its path relative to the package."""
    return {str(path.relative_to(PACKAGE)): ast.parse(path.read_text(), str(path))
            for path in sorted(PACKAGE.rglob("*.py"))}


# -- the owner-only write ----------------------------------------------------------------------

def test_only_files_creates_files_with_os_open():
    """O_CREAT (with O_EXCL, O_NOFOLLOW, fchmod before the first byte) is written once, in files.py."""
    creating = sorted(name for name, tree in modules().items()
                      for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and node.attr == "O_CREAT")
    assert creating == ["files.py"]


def test_certs_capture_and_report_write_through_files(tmp_path, monkeypatch):
    """A key, a saved capture and a report's files all take files.write_partial's temporary name."""
    made: list[str] = []
    real = files.partial

    def spy(dest: Path) -> Path:
        made.append(dest.name)
        return real(dest)

    monkeypatch.setattr(files, "partial", spy)
    monkeypatch.setattr(report, "page", lambda *args, **kwargs: "<html></html>")
    monkeypatch.setattr(report, "sequence", lambda result, lanes=None: [])
    monkeypatch.setattr(report, "index_json", lambda *args: "{}")
    certs._write(tmp_path / "ca" / "ca.key", b"KEY", True)
    capture.save(b"pcap", tmp_path / "tls.pcap")
    (tmp_path / "report").mkdir()
    report.write_report([types.SimpleNamespace(name="tls", pcap=b"pcap", keylog="")], tmp_path / "report")
    # The report's folder is probed first (check_output_dir), with the name index.html will be written under.
    assert made == ["ca.key", "tls.pcap", "index.html", "tls.pcap", "index.json", "index.html"]
    for path in (tmp_path / "ca" / "ca.key", tmp_path / "tls.pcap", tmp_path / "report" / "index.html"):
        assert os.stat(path).st_mode & 0o777 == 0o600, path


# -- one definition of each fact ---------------------------------------------------------------

# Being moved into the TLS package (issue 12, item 1), with their own duplicates.
MOVING = {"analyzer.py", "decrypt.py", "stolenkey.py"}


def test_no_module_constant_is_defined_twice():
    """SERVICES, SERVER_NAME, SIGNALS, Progress...: each is assigned in one module and imported elsewhere
    (two copies drift apart, and nothing notices)."""
    where: dict[str, list[str]] = {}
    for name, tree in modules().items():
        if name in MOVING or "/" in name:           # scenarios/ each declare NAME, TITLE... by design
            continue
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            for target in targets:
                if isinstance(target, ast.Name) and target.id.lstrip("_")[:1].isupper():
                    where.setdefault(target.id, []).append(name)
    assert {n: m for n, m in where.items() if len(m) > 1} == {}


# -- the lab split -----------------------------------------------------------------------------

CHANGING = {"up", "down", "build", "restart", "create", "start", "stop", "rm", "kill", "pull"}


def compose_commands(tree: ast.Module) -> set[str]:
    """The compose subcommands a module runs: `<anything>.run("up", ...)` / `.stream("logs", ...)`."""
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("run", "stream") and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


def test_only_bringup_runs_compose_commands_that_change_the_lab():
    """`compose up`, `build`, `restart`, `down`: bringing up and taking down have one home."""
    runs = {name: compose_commands(tree) & CHANGING for name, tree in modules().items()}
    assert {name: sorted(found) for name, found in runs.items() if found} == \
        {"bringup.py": ["build", "down", "restart", "up"]}


def test_the_lab_does_not_depend_on_bringing_it_up():
    """lab.py names and looks; bringup.py changes. The arrow goes one way (no cycle, no shim)."""
    tree = modules()["lab.py"]
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names} | \
               {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"bringup", "certs", "volumes", "interrupts", "waiting"}, imported


def test_signal_plumbing_imports_nothing_of_labctl():
    """entry imports interrupts before it blocks signals for the rest: interrupts must stand alone
    (it imported entry's handler once, and entry -> cli -> entry made a cycle)."""
    tree = modules()["interrupts.py"]
    assert [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level] == []


# -- captures and key logs in git ----------------------------------------------------------------

CAPTURE_NAMES = (".pcap", ".pcapng", ".keylog", ".keys", ".keys.txt", ".keylog.txt", ".key", ".pem")


def test_the_only_committed_captures_and_key_logs_are_the_listed_test_inputs():
    """What the lab makes (captures, key logs, keys) is never committed (.gitignore, files.py's 0600
    folders). The one exception is tests/captures: public test inputs and sessions made on loopback with
    throwaway keys (its README says whose), each listed with its SHA-256 in MANIFEST.sha256. A capture
    or key log tracked anywhere else, or one in that folder that the manifest does not name as it is,
    fails here."""
    import hashlib
    import subprocess
    root = PACKAGE.parent
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    names = [n for n in tracked.decode().split("\0") if n]
    if not names:
        return                                        # not a git checkout (an sdist): nothing to hold
    suspects = [n for n in names if n.endswith(CAPTURE_NAMES) or "/keylogs/" in n]
    assert [n for n in suspects if not n.startswith("tests/captures/")] == []
    manifest = {}
    for line in (root / "tests" / "captures" / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        manifest["tests/captures/" + name] = digest
    assert sorted(suspects) == sorted(manifest), "tests/captures/MANIFEST.sha256 must list each input"
    for name, digest in manifest.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name
