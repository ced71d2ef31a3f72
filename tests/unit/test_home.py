"""Where labctl finds the lab and keeps its state: a clone, LAB_HOME, or an installed wheel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labctl import home
from labctl.errors import UsageError

REPO = Path(__file__).resolve().parent.parent.parent


def make_lab_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "compose.yaml", path / "compose.yaml")
    (path / "services").mkdir()
    return path


def test_a_clone_uses_its_own_files_and_certs_folder():
    found = home.find_home({})
    assert found.kind == "clone"
    assert found.files == REPO and found.state == REPO
    assert found.compose_file == REPO / "compose.yaml"


def test_lab_home_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(UsageError, match=r"LAB_HOME=.*nowhere'? does not exist — create that folder"):
        home.find_home({"LAB_HOME": str(tmp_path / "nowhere")})


def test_lab_home_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match=r"LAB_HOME=.*/f'? is a file, not a folder"):
        home.find_home({"LAB_HOME": str(tmp_path / "f")})


def test_lab_home_holds_state_and_the_lab_comes_with_labctl(tmp_path):
    found = home.find_home({"LAB_HOME": str(tmp_path)})
    assert (found.kind, found.state, found.files) == ("LAB_HOME", tmp_path.resolve(), REPO)
    assert found.files_from == "the clone"


def test_lab_home_with_its_own_compose_file_is_built_from_it(tmp_path):
    lab = make_lab_folder(tmp_path / "mylab")
    found = home.find_home({"LAB_HOME": str(lab)})
    assert found.files == lab.resolve() and found.state == lab.resolve()
    assert found.files_from == "LAB_HOME"


def test_an_installed_labctl_reads_package_data_and_keeps_state_per_user(tmp_path, monkeypatch):
    packaged = make_lab_folder(tmp_path / "site-packages" / "labctl" / "data")
    monkeypatch.setattr(home, "clone_root", lambda: None)
    monkeypatch.setattr(home, "packaged_files", lambda: packaged)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    found = home.find_home({})
    assert (found.kind, found.files) == ("installed", packaged)
    assert found.state == tmp_path / "data" / "tlslab"
    assert found.state.stat().st_mode & 0o777 == 0o700      # it will hold private keys


def test_an_install_without_the_lab_says_so(monkeypatch):
    monkeypatch.setattr(home, "clone_root", lambda: None)
    monkeypatch.setattr(home, "packaged_files", lambda: None)
    with pytest.raises(UsageError, match="a broken install"):
        home.find_home({})


def test_the_package_data_folder_is_absent_from_a_clone():
    # An editable install reads the clone; labctl/data exists only inside a wheel.
    assert home.packaged_files() is None
