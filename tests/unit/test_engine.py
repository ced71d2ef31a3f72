"""One engine for the SDK and compose, chosen as the docker CLI chooses it."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from labctl import engine
from labctl.errors import DockerUnavailable


@pytest.fixture(autouse=True)
def docker_config(tmp_path, monkeypatch):
    """A docker config folder of the test's own: never the user's ~/.docker."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


def resolve(env: dict[str, str]) -> engine.Engine:
    return engine.resolve({"DOCKER_CONFIG": os.environ["DOCKER_CONFIG"], **env})


def create_context(name: str, host: str) -> None:
    """What `docker context create NAME --docker host=HOST` writes."""
    folder = os.path.join(os.environ["DOCKER_CONFIG"], "contexts", "meta", hashlib.sha256(name.encode()).hexdigest())
    os.makedirs(folder)
    with open(os.path.join(folder, "meta.json"), "w") as handle:
        json.dump({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}},
                  handle)


def test_nothing_set_means_the_local_socket():
    chosen = resolve({})
    assert (chosen.host, chosen.source) == ("unix:///var/run/docker.sock", "default socket")


def test_docker_host_is_used_as_given():
    chosen = resolve({"DOCKER_HOST": "tcp://127.0.0.1:23750"})
    assert (chosen.host, chosen.source) == ("tcp://127.0.0.1:23750", "DOCKER_HOST")


def test_docker_context_is_read_from_the_docker_config():
    create_context("teacher", host="tcp://127.0.0.1:23751")
    chosen = resolve({"DOCKER_CONTEXT": "teacher"})
    assert chosen.host == "tcp://127.0.0.1:23751"
    assert chosen.source == "context 'teacher' from DOCKER_CONTEXT"


def test_the_current_context_counts_when_nothing_is_set(docker_config):
    create_context("class", host="tcp://127.0.0.1:23752")
    (docker_config / "config.json").write_text(json.dumps({"currentContext": "class"}))
    chosen = resolve({})
    assert chosen.host == "tcp://127.0.0.1:23752" and "currentContext" in chosen.source


def test_docker_host_beats_the_current_context_as_in_the_cli(docker_config):
    create_context("class", host="tcp://127.0.0.1:23752")
    (docker_config / "config.json").write_text(json.dumps({"currentContext": "class"}))
    assert resolve({"DOCKER_HOST": "tcp://127.0.0.1:9"}).host == "tcp://127.0.0.1:9"


def test_docker_host_and_context_that_agree_are_fine():
    create_context("same", host="tcp://127.0.0.1:23753")
    chosen = resolve({"DOCKER_HOST": "tcp://127.0.0.1:23753", "DOCKER_CONTEXT": "same"})
    assert chosen.host == "tcp://127.0.0.1:23753"


def test_docker_host_and_context_that_disagree_are_refused():
    create_context("elsewhere", host="tcp://127.0.0.1:23754")
    with pytest.raises(DockerUnavailable, match=r"DOCKER_HOST=tcp://127.0.0.1:1 and DOCKER_CONTEXT=elsewhere "
                                                r"\(tcp://127.0.0.1:23754\) name different engines"):
        resolve({"DOCKER_HOST": "tcp://127.0.0.1:1", "DOCKER_CONTEXT": "elsewhere"})


def test_a_context_that_does_not_exist_is_named():
    with pytest.raises(DockerUnavailable, match=r"docker context 'ghost' \(from DOCKER_CONTEXT\) does not exist"):
        resolve({"DOCKER_CONTEXT": "ghost"})


def test_the_default_context_means_docker_host_or_the_socket():
    assert resolve({"DOCKER_CONTEXT": "default", "DOCKER_HOST": "tcp://127.0.0.1:5"}).host == "tcp://127.0.0.1:5"


def test_subprocesses_get_the_same_engine_and_no_context():
    create_context("teacher", host="tcp://127.0.0.1:23751")
    chosen = resolve({"DOCKER_CONTEXT": "teacher"})
    env = chosen.subprocess_env({"DOCKER_CONTEXT": "teacher", "PATH": "/bin", "DOCKER_TLS_VERIFY": "1"})
    assert env == {"DOCKER_HOST": "tcp://127.0.0.1:23751", "PATH": "/bin"}


def test_an_unreachable_engine_is_one_line_naming_it():
    chosen = resolve({"DOCKER_HOST": "tcp://127.0.0.1:1"})
    with pytest.raises(DockerUnavailable, match=r"cannot reach the Docker daemon at tcp://127.0.0.1:1 \(DOCKER_HOST\) "
                                                r"\(connection refused\)"):
        chosen.client(timeout=5)


def test_a_context_in_a_config_folder_without_config_json(docker_config):
    # `docker --config DIR context create ...` makes no config.json; the CLI still finds the context.
    (docker_config / "config.json").unlink()
    create_context("teacher", host="tcp://127.0.0.1:23755")
    assert resolve({"DOCKER_CONTEXT": "teacher"}).host == "tcp://127.0.0.1:23755"
    assert resolve({}).host == "unix:///var/run/docker.sock"     # and no current context to find


def test_a_tls_context_hands_its_certificates_to_compose(docker_config):
    import trustme

    create_context("secure", host="tcp://127.0.0.1:2376")
    tls_dir = docker_config / "contexts" / "tls" / hashlib.sha256(b"secure").hexdigest() / "docker"
    tls_dir.mkdir(parents=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("client")
    ca.cert_pem.write_to_path(str(tls_dir / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tls_dir / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tls_dir / "key.pem"))
    chosen = resolve({"DOCKER_CONTEXT": "secure"})
    assert chosen.tls is not None and chosen.tls.cert == (str(tls_dir / "cert.pem"), str(tls_dir / "key.pem"))
    assert chosen.env() == {"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_CERT_PATH": str(tls_dir),
                            "DOCKER_TLS_VERIFY": "1"}
