"""The service programs' own logic, without a lab: the client's DNS and HSTS, the attacker's sslstrip.

The lab's integration tests run them for real; these pin the edge cases a run
would not reach.
"""

from __future__ import annotations

import importlib.util
import socket
import struct
from pathlib import Path

import pytest

from labctl.images import context_hash, copied_sources

SERVICES = Path(__file__).resolve().parents[2] / "services"


def load(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, SERVICES / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = load("client/client.py")


def answer(qid: int, query: bytes, addresses: list[str], rcode: int = 0) -> bytes:
    """A resolver's answer to QUERY: the question copied, one A record per address (name compressed)."""
    question = query[12:]
    records = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(a) for a in addresses)
    return struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(addresses), 0, 0) + question + records


def test_a_refusing_resolver_is_named():
    qid, query = client.dns_query("example.com")
    with pytest.raises(client.DnsError, match=r"rcode 5 \(refused\)"):
        client.dns_addresses(answer(qid, query, [], rcode=5), qid)


def test_a_dns_answer_gives_its_addresses_and_a_strangers_is_refused():
    qid, query = client.dns_query("server.lab.test")
    assert query[12:].startswith(b"\x06server\x03lab\x04test\x00")
    assert client.dns_addresses(answer(qid, query, ["10.77.0.20", "10.77.0.21"]), qid) == ["10.77.0.20", "10.77.0.21"]
    with pytest.raises(client.DnsError, match="not ours"):
        client.dns_addresses(answer(qid ^ 1, query, ["10.77.0.66"]), qid)
    with pytest.raises(client.DnsError, match="no such name"):
        client.dns_addresses(answer(qid, query, [], rcode=3), qid)
    with pytest.raises(client.DnsError, match="cut short|shorter"):
        client.dns_addresses(answer(qid, query, ["10.77.0.20"])[:20], qid)


@pytest.mark.parametrize("header, age", [("max-age=31536000", 31536000), ('max-age="60"; includeSubDomains', 60),
                                         ("includeSubDomains; MAX-AGE=0", 0), ("includeSubDomains", None),
                                         ("max-age=soon", None)])
def test_hsts_max_age_follows_rfc_6797(header, age):
    assert client.hsts_max_age(header) == age


def test_the_login_form_is_found_and_a_page_without_one_is_not():
    finder = client.FormFinder()
    finder.feed('<p>x</p><form method="post" action="https://www.lab.test/login"><input name="password"></form>')
    assert finder.action == "https://www.lab.test/login"
    empty = client.FormFinder()
    empty.feed("<p>Hello from the lab server.")
    assert empty.action is None


@pytest.mark.parametrize("argv, message", [
    (["www.lab.test", "--hsts-from", "https://www.lab.test/"], "belong to --browse"),
    (["www.lab.test", "--browse", "--hsts-from", "http://www.lab.test/"], "must be an https:// URL"),
    (["www.lab.test", "--browse", "--plain"], "--plain does not apply"),
    (["www.lab.test", "--dns", "dnscrypt"], "invalid choice"),
    (["www.lab.test", "--browse", "--secret", "x", "--hsts-from", "https://www.lab.test/\r\nX-Injected: yes"],
     "no control characters"),
    (["www.lab.test", "--browse", "--secret", "x", "--hsts-from", "https://"], "with a host name"),
    (["www.lab.test", "--browse", "--secret", "x", "--hsts-from", "https://www.lab.test:99999/"], "with a host name"),
    (["www.lab.test", "--browse", "--secret", "x", "--hsts-preload", ""], "is not a host name"),
    (["www.lab.test", "--browse", "--secret", "x", "--hsts-preload", "bad host!"], "is not a host name"),
    (["www.lab.test", "--browse", "--secret", "x", "--port", "8443"], "--port does not apply to --browse"),
    (["www.lab.test", "--browse", "--secret", "x", "--sni", "a.lab.test"], "--sni does not apply"),
    (["www.lab.test", "--browse", "--secret", "x", "--secret-in", "form"], "--secret-in does not apply"),
    (["www.lab.test", "--browse", "--secret", "x", "--alpn", "h2"], "--alpn does not apply"),
    (["www.lab.test", "--browse"], "--browse needs --secret"),
])
def test_client_refuses_options_that_do_not_go_together(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        client.parse(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_an_image_hash_covers_files_its_dockerfile_copies_from_another_service(tmp_path):
    for folder, files in {"base": {"lab-init": "x"}, "server": {"server.py": "v1", "Dockerfile": ""},
                          "proxy": {"nginx.conf": "c", "Dockerfile": "COPY base/lab-init proxy/nginx.conf "
                                                                      "server/server.py /app/\n"}}.items():
        (tmp_path / folder).mkdir()
        for name, text in files.items():
            (tmp_path / folder / name).write_text(text)
    assert copied_sources(tmp_path / "proxy" / "Dockerfile") == ["base/lab-init", "proxy/nginx.conf", "server/server.py"]
    before = context_hash(tmp_path, "proxy", "base-id")
    (tmp_path / "server" / "server.py").write_text("v2")
    assert context_hash(tmp_path, "proxy", "base-id") != before
