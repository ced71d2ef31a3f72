"""labctl as a user installs it: a wheel in a clean virtualenv, run from an empty folder.

No clone, no `pip install -e`, no LAB_HOME: compose.yaml and services/ come
from the package, the certificates go to the per-user data folder (here a
fresh XDG_DATA_HOME, as for a new user), and nothing is written where the
user stands but what they asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import docker
import pytest

from tests.conftest import ROOT, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The labctl script of a fresh virtualenv that has only the wheel (and its dependencies)."""
    work = tmp_path_factory.mktemp("wheel")
    # Build from a copy: building in place would leave build/ and *.egg-info in the clone.
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info",
                                                                 "__pycache__", ".pytest_cache", "certs"))
    (source / "certs").mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(source)],
                   check=True, stdin=subprocess.DEVNULL)
    [wheel] = (work / "dist").glob("tlslab-*.whl")
    venv.create(work / "venv", with_pip=True)
    subprocess.run([str(work / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, stdin=subprocess.DEVNULL)
    return work / "venv" / "bin" / "labctl"


def test_the_wheel_carries_every_subpackage_and_the_lab(installed):
    site = next((installed.parent.parent / "lib").glob("python3*/site-packages"))
    assert (site / "labctl" / "scenarios" / "tls.py").is_file()
    assert (site / "labctl" / "data" / "compose.yaml").is_file()
    lab_init = site / "labctl" / "data" / "services" / "base" / "lab-init"
    assert lab_init.stat().st_mode & 0o111, "lab-init must stay executable: it is every container's entrypoint"
    assert not (site / "labctl" / "data" / "certs").exists()


def test_a_wheel_brings_up_a_lab_from_an_empty_folder(installed, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    data = tmp_path / "xdg-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_") and k != "PYTHONPATH"}
    env.update(XDG_DATA_HOME=str(data), XDG_CACHE_HOME=str(tmp_path / "xdg-cache"))
    project = unique("twhl")

    def labctl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(installed), "--project", project, *args], cwd=empty, env=env, text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    try:
        up = labctl("up", "--json")
        assert up.returncode == 0, up.stderr
        steps = {s["step"]: s["outcome"] for s in json.loads(up.stdout)["steps"]}
        certs_dir = data / "tlslab" / "certs"
        assert steps["certificates"] == f"generated in {certs_dir}"
        assert (data / "tlslab").stat().st_mode & 0o777 == 0o700
        assert (certs_dir / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600

        run = labctl("run", "all", "--json", "--pcap", "captures")
        assert run.returncode == 0, run.stderr[-2000:]
        doc = json.loads(run.stdout)
        assert doc["passed"] is True and len(doc["results"]) >= 9

        analyze = labctl("analyze", "captures/tls.pcap", "--json")
        assert analyze.returncode == 0, analyze.stderr
        observation = json.loads(analyze.stdout)
        assert observation["schema"] == "tlslab.observation/1"
        assert "server.lab.test" in analyze.stdout

        down = labctl("down", "--volumes")
        assert down.returncode == 0, down.stderr
        label = {"label": f"com.docker.compose.project={project}"}
        client = docker.from_env()
        assert client.containers.list(all=True, filters=label) == []
        assert client.volumes.list(filters=label) == [] and client.networks.list(filters=label) == []
        assert sorted(p.name for p in empty.iterdir()) == ["captures"]
    finally:
        labctl("down", "--volumes")
