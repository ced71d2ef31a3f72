"""Load: 200 concurrent TLS clients, and a 100 MB transfer, with nothing lost on the wire."""

from __future__ import annotations

import pytest

from labctl import capture, runner
from labctl.tls.analyzer import S2C, analyze

pytestmark = pytest.mark.integration

CLIENTS = 200


def test_server_holds_200_concurrent_clients_and_the_wire_sees_every_handshake(session_lab):
    lab = session_lab.lab()
    runs = [[runner.SERVER_NAME, "--timeout", "30", "--path", "/bytes/2048"] for _ in range(CLIENTS)]
    b = runner.batch(lab, "load", runs, buffer_mib=128, parallel=CLIENTS)
    failed = [r.get("error") for r in b.reports if not r["ok"]]
    assert not failed, failed[:5]
    assert b.stats.complete and b.stats.dropped_by_kernel == 0
    hellos = {t.flow.client_port for t in b.observation.tls if t.client_hello and t.server_hello}
    assert hellos == {r["local_port"] for r in b.reports}      # every connection, by its own port
    assert len(hellos) == CLIENTS


def test_a_100_mb_transfer_through_the_wire_loses_nothing(session_lab):
    lab = session_lab.lab()
    size = 100_000_000
    capture.start(lab, "bulk-test", buffer_mib=128)
    try:
        status, out, _ = lab.exec("client", ["python3", "/app/client.py", runner.SERVER_NAME,
                                             "--path", f"/bytes/{size}", "--timeout", "60"], user="lab", timeout=120)
    finally:
        stats = capture.stop(lab, "bulk-test")
    assert status == 0, out
    assert stats.complete and stats.dropped_by_kernel == 0, stats
    obs = analyze(capture.read(lab, "bulk-test"))
    capture.remove(lab, "bulk-test")
    [conn] = obs.tls
    assert conn.flow.gaps == {"c2s": 0, "s2c": 0}                 # no hole in either direction
    assert conn.app_data_bytes(S2C) > size                       # every encrypted byte is in the capture
