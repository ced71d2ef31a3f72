"""Files that may hold secrets (captures, key logs, the report): where they go is checked before
anything runs, and what is written is its owner's alone, checked on disk, never assumed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from labctl import capture, files
from labctl.errors import CaptureError, ExitStatus, LabError, UsageError

DATA = b"\xd4\xc3\xb2\xa1 not really a capture, but secret all the same"
ROOT = os.geteuid() == 0


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(autouse=True)
def loose_umask():
    """The umask must not be what makes the files private."""
    old = os.umask(0o022)
    yield
    os.umask(old)


# -- capture.save: the mode is a fact --------------------------------------------------------

def test_save_over_a_world_readable_file_leaves_it_0600(tmp_path):
    dest = tmp_path / "tls.pcap"
    dest.write_bytes(b"old")
    os.chmod(dest, 0o644)
    capture.save(DATA, dest)
    assert mode(dest) == 0o600 and dest.read_bytes() == DATA
    assert leftovers(tmp_path) == []


def test_a_stale_partial_file_at_0644_does_not_make_the_capture_0644(tmp_path):
    dest = tmp_path / "tls.pcap"
    stale = files.partial(dest)
    stale.write_bytes(b"left by an interrupted run" * 100)
    os.chmod(stale, 0o644)
    capture.save(DATA, dest)
    assert mode(dest) == 0o600 and dest.read_bytes() == DATA
    assert not stale.exists()


def test_a_symlink_planted_as_the_partial_file_is_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    os.chmod(victim, 0o644)
    dest = tmp_path / "tls.pcap"
    files.partial(dest).symlink_to(victim)
    capture.save(DATA, dest)
    assert victim.read_bytes() == b"precious" and mode(victim) == 0o644
    assert dest.read_bytes() == DATA and mode(dest) == 0o600


def test_a_restrictive_umask_still_gives_0600(tmp_path):
    os.umask(0o277)                  # would make 0400 of O_CREAT's 0600
    dest = capture.save(DATA, tmp_path / "k.keylog")
    assert mode(dest) == 0o600


def test_save_refuses_a_device_instead_of_renaming_over_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CaptureError, match="is a FIFO"):
        capture.save(DATA, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(CaptureError, match="is a folder"):
        capture.save(DATA, tmp_path)


def test_a_file_that_does_not_come_out_0600_is_not_kept(tmp_path, monkeypatch):
    """A filesystem that ignores modes (vfat, some network mounts): the check after the rename catches it."""
    dest = tmp_path / "tls.pcap"
    real_fchmod = os.fchmod
    monkeypatch.setattr(os, "fchmod", lambda fd, m: real_fchmod(fd, 0o644))
    with pytest.raises(CaptureError, match=r"came out mode 0644, not a file of mode 0600"):
        capture.save(DATA, dest)
    assert not dest.exists() and leftovers(tmp_path) == []


def test_an_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    dest = tmp_path / "tls.pcap"

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        capture.save(DATA, dest)
    assert list(tmp_path.iterdir()) == []


# -- check_output: before anything runs --------------------------------------------------------

@pytest.mark.parametrize("value", ["", " ", "\t\n"])
def test_an_empty_or_blank_name_is_refused(value):
    with pytest.raises(UsageError, match=r"^--pcap '.*' is not a name") as caught:
        capture.check_output(value, "--pcap")
    assert caught.value.status == ExitStatus.USAGE and "\n" not in str(caught.value)


@pytest.mark.parametrize("what", ["folder", "folder/", "dot", "devnull", "fifo", "socket"])
def test_a_path_that_is_not_a_regular_file_is_refused(tmp_path, what):
    import socket

    (tmp_path / "folder").mkdir()
    value = {"folder": str(tmp_path / "folder"), "folder/": str(tmp_path / "folder") + "/",
             "dot": str(tmp_path / "."), "devnull": "/dev/null", "fifo": str(tmp_path / "fifo"),
             "socket": str(tmp_path / "sock")}[what]
    if what == "fifo":
        os.mkfifo(value)
    sock = None
    if what == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(value)
    try:
        with pytest.raises(UsageError, match=r"folder|device|FIFO|socket") as caught:
            capture.check_output(value, "--pcap")
    finally:
        if sock:
            sock.close()
    assert "\n" not in str(caught.value)
    assert os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_writable_destination_is_accepted_and_nothing_is_left(tmp_path):
    assert capture.check_output(str(tmp_path / "tls.pcap")) == tmp_path / "tls.pcap"
    assert capture.check_output(str(tmp_path / "new" / "deeper" / "tls.pcap"), "--keylog")
    assert list(tmp_path.iterdir()) == []            # the probe was removed; no folder was made


def test_an_existing_regular_file_is_accepted(tmp_path):
    (tmp_path / "tls.pcap").write_bytes(b"old")
    assert capture.check_output(str(tmp_path / "tls.pcap")) == tmp_path / "tls.pcap"
    assert (tmp_path / "tls.pcap").read_bytes() == b"old" and leftovers(tmp_path) == []


def test_a_stale_partial_is_no_obstacle(tmp_path):
    files.partial(tmp_path / "tls.pcap").write_bytes(b"stale")
    capture.check_output(str(tmp_path / "tls.pcap"))
    assert leftovers(tmp_path) == []


def test_a_file_where_a_folder_should_be(tmp_path):
    (tmp_path / "notes").write_text("x")
    with pytest.raises(UsageError, match=r"notes is a file, not a folder"):
        capture.check_output(str(tmp_path / "notes" / "sub" / "tls.pcap"))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
@pytest.mark.parametrize("value", ["/proc/x.pcap", "/proc/no-such-folder/x.pcap"])
def test_a_folder_nobody_can_write_in_is_found_for_real(value):
    """Even root cannot create files in /proc: the probe file is really created, so this is caught."""
    with pytest.raises(UsageError, match=r"cannot write in /proc") as caught:
        capture.check_output(value, "--pcap")
    assert caught.value.status == ExitStatus.USAGE


@pytest.mark.skipif(ROOT, reason="root writes in a read-only folder anyway (the /proc test covers root)")
def test_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o500)
    try:
        with pytest.raises(UsageError, match="cannot write in"):
            capture.check_output(str(folder / "tls.pcap"))
        with pytest.raises(UsageError, match="cannot write in"):
            capture.check_output(str(folder / "missing" / "tls.pcap"))
    finally:
        os.chmod(folder, 0o700)


def test_a_filesystem_that_ignores_modes_is_refused_before_the_run(tmp_path, monkeypatch):
    real_fchmod = os.fchmod
    monkeypatch.setattr(os, "fchmod", lambda fd, m: real_fchmod(fd, 0o755))
    with pytest.raises(UsageError, match=r"come out mode 0755, not 0600"):
        capture.check_output(str(tmp_path / "tls.pcap"))
    assert list(tmp_path.iterdir()) == []


def test_a_name_that_is_not_utf8_prints_on_one_line(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9\nx"
    name = os.fsdecode(raw)
    os.mkfifo(raw)
    with pytest.raises(UsageError) as caught:
        capture.check_output(name, "--pcap")
    text = str(caught.value)
    assert "caf\\xe9\\nx holds a control character" in text and "\n" not in text
    text.encode("utf-8")                             # printable anywhere: no lone surrogate left
    ok = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.pcap")
    dest = capture.save(DATA, capture.check_output(ok))
    assert os.path.exists(os.fsencode(dest)) and mode(dest) == 0o600


# -- the folder variant: `run all --pcap DIR`, `report --out DIR` -------------------------------------

def test_output_folder_accepts_a_new_or_existing_folder(tmp_path):
    assert capture.check_output_dir(str(tmp_path), "--pcap", ["tls.pcap"]) == tmp_path
    assert capture.check_output_dir(str(tmp_path / "a" / "b"), "--pcap") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["", "   ", "/dev/null"])
def test_output_folder_refuses_what_is_not_a_folder(value):
    with pytest.raises(UsageError):
        capture.check_output_dir(value, "--pcap")


def test_output_folder_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match=r"f is a file, not a folder: give a folder"):
        capture.check_output_dir(str(tmp_path / "f"), "--pcap")


def test_output_folder_refuses_a_scenario_file_that_is_in_the_way(tmp_path):
    (tmp_path / "tls.pcap").mkdir()
    with pytest.raises(UsageError, match=r"tls.pcap is a folder"):
        capture.check_output_dir(str(tmp_path), "--pcap", ["plaintext.pcap", "tls.pcap"])


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_output_folder_in_proc():
    with pytest.raises(UsageError, match="cannot write in /proc"):
        capture.check_output_dir("/proc/labctl-out", "--pcap")


def test_every_refusal_is_a_lab_error_with_one_line(tmp_path):
    for value in ("", str(tmp_path), "/dev/null"):
        with pytest.raises(LabError) as caught:
            capture.check_output(value)
        assert caught.value.status == ExitStatus.USAGE and "\n" not in str(caught.value)


def test_a_dangling_symlink_as_the_output_folder_is_refused_before_anything_runs(tmp_path):
    from labctl import capture, report

    link = tmp_path / "report"
    link.symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(UsageError, match=r"is a symbolic link to .*nowhere/x.*, which does not exist"):
        report.check_out_dir(link)
    with pytest.raises(UsageError, match=r"--pcap .* is a symbolic link"):
        capture.check_output_dir(link, "--pcap", ["tls.pcap"])
    assert not (tmp_path / "nowhere").exists()


def test_a_symlink_loop_as_the_output_folder_says_it_loops(tmp_path):
    from labctl import report

    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(UsageError, match=r"is a symbolic link to .*loop.*, which leads back to itself"):
        report.check_out_dir(loop)
