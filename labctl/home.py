"""Where the lab's files are, whichever way labctl was installed.

Two kinds of files:

- the lab itself, read-only: ``compose.yaml`` and ``services/``. From a clone
  (``pip install -e .``) they are the clone's own; from a wheel (``pip
  install .``, pipx) they are package data in ``labctl/data/``, read through
  importlib.resources.
- labctl's state: the certificates folder (``certs/``). From a clone it is the
  clone's gitignored ``certs/``; from a wheel, a per-user data folder
  (platformdirs: ``~/.local/share/tlslab`` on Linux), mode 0700.

``LAB_HOME`` names the state folder instead. It must exist and be a folder
(a typo is an error, never silently ignored). When it also holds a
``compose.yaml`` and ``services/`` (a clone, or a copy a teacher changed),
the lab is built from those.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import platformdirs

from .errors import UsageError
from .files import has_control

APP = "tlslab"


@dataclass(frozen=True)
class Home:
    """The folders one labctl run uses."""

    files: Path     # holds compose.yaml and services/ (never written)
    state: Path     # holds certs/ (and whatever else labctl keeps)
    kind: str       # "LAB_HOME", "clone" or "installed": how they were found

    @property
    def files_from(self) -> str:
        """Where the lab files came from: "LAB_HOME", "the clone" or "the installed package"."""
        if self.kind == "LAB_HOME" and self.files == self.state:
            return "LAB_HOME"
        return "the clone" if self.files == clone_root() else "the installed package"

    @property
    def compose_file(self) -> Path:
        return self.files / "compose.yaml"

    @property
    def services(self) -> Path:
        return self.files / "services"


def is_lab_folder(path: Path) -> bool:
    return (path / "compose.yaml").is_file() and (path / "services").is_dir()


def packaged_files() -> Path | None:
    """labctl/data/ of an installed wheel, or None (an editable install has none)."""
    data = importlib.resources.files("labctl").joinpath("data")
    if isinstance(data, Path) and is_lab_folder(data):
        return data
    return None


def clone_root() -> Path | None:
    """The repository labctl runs from (an editable install), or None."""
    root = Path(__file__).resolve().parent.parent
    return root if is_lab_folder(root) and (root / "labctl").is_dir() else None


def find_home(environ: Mapping[str, str] | None = None) -> Home:
    """Resolve the lab's files and labctl's state folder.

    Raises UsageError when LAB_HOME is set but is not an existing folder, or
    when no compose.yaml can be found at all (a broken install).
    """
    env = os.environ if environ is None else environ
    bundled = clone_root() or packaged_files()
    if env.get("LAB_HOME"):
        shown = repr(env["LAB_HOME"][:80])
        if has_control(env["LAB_HOME"]):
            raise UsageError(f"LAB_HOME={shown} holds a control character (a newline?) — point it at a folder")
        home = Path(env["LAB_HOME"]).expanduser()
        try:
            exists, is_dir = home.exists(), home.is_dir()
            home = home.resolve()
        except OSError as exc:             # a name too long, a loop of links
            raise UsageError(f"LAB_HOME={shown}: {exc.strerror} — point it at a folder, or unset it") from None
        if not exists:
            raise UsageError(f"LAB_HOME={shown} does not exist — create that folder "
                             "(mkdir -p) or unset LAB_HOME to use the default")
        if not is_dir:
            raise UsageError(f"LAB_HOME={shown} is a file, not a folder — point it at a "
                             "folder for the lab's certificates, or unset it")
        files = home if is_lab_folder(home) else bundled
        if files is None:
            raise UsageError(f"LAB_HOME={home} holds no compose.yaml and services/, and this labctl "
                             "has none of its own — reinstall it (pip install tlslab)")
        return Home(files=files, state=home, kind="LAB_HOME")
    clone = clone_root()
    if clone is not None:
        return Home(files=clone, state=clone, kind="clone")
    packaged = packaged_files()
    if packaged is None:
        raise UsageError("this labctl has no compose.yaml or services/ (a broken install) — reinstall "
                         "it from a wheel, or run it from a clone with `pip install -e .`")
    state = Path(platformdirs.user_data_dir(APP, appauthor=False))
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Home(files=packaged, state=state, kind="installed")


def cache_dir() -> Path:
    """A per-user cache folder (build locks), created on demand."""
    path = Path(platformdirs.user_cache_dir(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path
