"""Which compose labctl runs: v2 when it answers, else v1; LAB_COMPOSE insists on one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from labctl import compose
from labctl.errors import DockerUnavailable, UsageError


def fake(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def bin_dir(tmp_path):
    compose._find_tool.cache_clear()
    yield tmp_path
    compose._find_tool.cache_clear()


def test_v2_is_preferred_when_the_plugin_answers(bin_dir, monkeypatch):
    fake(bin_dir, "docker", '[ "$1 $2" = "compose version" ] && echo 2.40.3')
    fake(bin_dir, "docker-compose", "echo 1.29.2")
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    assert compose.find_tool(str(bin_dir)).version == 2


def test_v1_when_the_plugin_is_missing(bin_dir, monkeypatch):
    fake(bin_dir, "docker", "exit 1")
    fake(bin_dir, "docker-compose", "echo 1.29.2")
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    assert compose.find_tool(str(bin_dir)).command == (str(bin_dir / "docker-compose"),)


def test_lab_compose_v1_takes_v1_even_beside_v2(bin_dir, monkeypatch):
    fake(bin_dir, "docker", 'echo 2.40.3')
    fake(bin_dir, "docker-compose", "echo 1.29.2")
    monkeypatch.setenv("LAB_COMPOSE", "v1")
    assert compose.find_tool(str(bin_dir)).version == 1


def test_lab_compose_names_what_is_missing(bin_dir, monkeypatch):
    fake(bin_dir, "docker", "exit 1")
    monkeypatch.setenv("LAB_COMPOSE", "v2")
    with pytest.raises(DockerUnavailable, match="LAB_COMPOSE=v2 but `docker compose` does not answer"):
        compose.find_tool(str(bin_dir))
    monkeypatch.setenv("LAB_COMPOSE", "v1")
    with pytest.raises(DockerUnavailable, match="LAB_COMPOSE=v1 but `docker-compose` is not on PATH"):
        compose.find_tool(str(bin_dir))


def test_lab_compose_must_be_a_known_choice(bin_dir, monkeypatch):
    monkeypatch.setenv("LAB_COMPOSE", "v3")
    with pytest.raises(UsageError, match="LAB_COMPOSE='v3' is not one of: auto, v2, v1"):
        compose.find_tool(str(bin_dir))


def test_the_probe_ignores_a_context_it_cannot_see(bin_dir, monkeypatch):
    # The CLI fails every command when DOCKER_CONTEXT names a missing context;
    # the probe asks the local CLI alone.
    fake(bin_dir, "docker", '[ -n "$DOCKER_CONTEXT" ] && exit 1; echo 2.40.3')
    monkeypatch.delenv("LAB_COMPOSE", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "somewhere")
    assert compose.find_tool(str(bin_dir)).version == 2
