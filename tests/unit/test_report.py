"""The HTML report on results built from real synthetic captures (tests/synth.py): no Docker needed."""

from __future__ import annotations

import dataclasses
import re
import stat

import pytest

from labctl import report
from labctl.capture import CaptureStats
from labctl.errors import UsageError
from labctl.exchange import ExchangeResult
from labctl.scenarios.forward_secrecy import ForwardSecrecyResult
from labctl.scenarios.traffic_analysis import TrafficResult
from labctl.sequence import Lanes, infer_lanes
from labctl.tls.analyzer import analyze
from labctl.verdict import Check
from tests import synth

SECRET = "s3cr3t-UnitTestSecret0123456789"
ADDRESSES = {"client": synth.CLIENT_IP, "server": synth.SERVER_IP, "dns": "10.77.0.53", "wire": "10.77.0.254"}
LANES = Lanes(ADDRESSES)
REQUEST = (b"GET / HTTP/1.1\r\nHost: server.lab.test\r\nUser-Agent: tlslab-client/1\r\n"
           b"Cookie: session=" + SECRET.encode() + b"\r\n\r\n")


def _stats(name: str) -> CaptureStats:
    return CaptureStats(name, f"/captures/{name}.pcap", 1000, 12, 12, 0, True, False)


def _result(name: str, session, keylog: str = "", decrypted=None, title="a title") -> ExchangeResult:
    pcap = session.pcap.read_bytes()
    obs = analyze(pcap)
    checks = [Check("capture complete", True, "12 packets"),
              Check("secret not on the wire", not obs.find(SECRET.encode()), "searched <everything>")]
    return ExchangeResult(name, title, checks, _stats(name), obs, pcap, keylog,
                                 secret=SECRET, client={"ok": True}, decrypted=decrypted)


def _svg(result, limit: int = report.MAX_EVENTS) -> str:
    return report.sequence_svg(result.name, report.sequence(result, LANES), LANES, limit)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    return {"tls": synth.tls_session(tmp, request=REQUEST, name="tls13"),
            "tls12": synth.tls_session(tmp, max_version="1.2", request=REQUEST, name="tls12"),
            "plain": synth.plain_session(tmp, request=REQUEST, response=synth.DEFAULT_RESPONSE)}


@pytest.fixture(scope="module")
def tls(sessions):
    s = sessions["tls"]
    return _result("tls", s, s.keylog.read_text(), {"c2s": REQUEST, "s2c": b"HTTP/1.1 200 OK\r\n\r\n"})


@pytest.fixture(scope="module")
def plain(sessions):
    return _result("plaintext", sessions["plain"])


def test_lanes_at_the_lab_addresses(tls):
    svg = _svg(tls)
    lanes = re.findall(r'<g class="lane" data-lane="(\w+)">', svg)
    assert lanes == ["client", "wire", "server", "dns"]
    for address in ADDRESSES.values():
        assert f">{address}</text>" in svg


def test_every_record_is_an_arrow_with_type_and_size(tls):
    svg = _svg(tls)
    records = tls.observation.tls[0].records
    arrows = re.findall(r'<g class="arrow (\w+)" data-kind="\w+" data-size="(\d+)"', svg)
    tls_arrows = [a for a in arrows if a[0] != "control"]
    assert len(tls_arrows) == len(records)            # synth has no DNS: every clear/enc arrow is a record
    assert [int(size) for _, size in tls_arrows] == [r.length for r in records]
    assert "ClientHello · " in svg and "ServerHello · " in svg
    assert any(kind == "control" for kind, _ in arrows)     # the TCP handshake is drawn too


def test_encrypted_records_drawn_differently_from_clear(tls):
    svg = _svg(tls)
    enc = re.findall(r'<g class="arrow enc".*?</g>(?=<g class="arrow|<text|</svg>)', svg)
    clear = re.findall(r'<g class="arrow clear".*?</g>(?=<g class="arrow|<text|</svg>)', svg)
    assert enc and clear
    assert all('stroke-dasharray="none"' in a and 'class="lock"' in a for a in enc)      # solid, padlock
    assert all('stroke-dasharray="7 4"' in a and 'class="lock"' not in a for a in clear)  # dashed
    # TLS 1.3: only ClientHello, ServerHello and change_cipher_spec are in clear
    assert sum(r.content_type == 23 for r in tls.observation.tls[0].records) == len(enc)


def test_tls12_finished_after_change_cipher_spec_counts_as_encrypted(sessions):
    s = sessions["tls12"]
    svg = _svg(_result("tls12", s))
    assert "Certificate · " in svg                       # TLS 1.2: the certificate in clear
    assert "handshake (encrypted) · 40 B" in svg         # the Finished after change_cipher_spec


def test_arrows_are_bounded(tls):
    svg = _svg(tls, limit=5)
    assert svg.count('<g class="arrow ') == 5
    total = len(report.sequence(tls, LANES))
    assert f"… {total - 5} more events not drawn (first 5 of {total})" in svg


def test_events_come_from_the_observation_each_packet_once(tls, plain):
    """The report does not read the pcap again: the analyzer's packets are the events' only source."""
    for result in (tls, plain):
        assert report.sequence(dataclasses.replace(result, pcap=b""), LANES) == report.sequence(result, LANES)
    evs = report.sequence(plain, LANES)
    packets = plain.observation.packets
    drawn = [p for p in packets if p.payload or p.flags & 0x07]      # data, and SYN/FIN/RST; not pure ACKs
    assert [(e.time, e.src, e.dst, e.size) for e in evs] == [(p.time, p.src, p.dst, p.payload_len) for p in drawn]
    assert evs[0].label == "TCP SYN :80" and evs[2].label == "TCP data: GET / HTTP/1.1"


def test_addresses_inferred_from_the_capture_when_not_given(tls):
    found = infer_lanes(tls.observation).addresses
    assert found["client"] == synth.CLIENT_IP and found["server"] == synth.SERVER_IP
    assert found["wire"] == "10.77.0.254"


def test_secret_shown_when_on_the_wire_and_masked_when_not(tls, plain):
    plain_html = report.section(plain, LANES)
    tls_html = report.section(tls, LANES)
    assert SECRET in plain_html
    assert SECRET not in tls_html                        # not even in the key-log view
    assert "masked" in tls_html and "Cookie: session=s3cr3t-••••" in tls_html
    assert "GET / HTTP/1.1" in plain_html                # the clear-text excerpt


def test_panels_and_verdicts(tls):
    html = report.section(tls, LANES, {"capture": "tls.pcap", "key log": "tls.keylog"})
    assert "on the wire (ciphertext)" in html and "what still leaks" in html
    assert '<table class="leaks">' in html and "<th scope=\"row\">SNI</th><td>server.lab.test</td>" in html
    assert "✔ PASS" in html and "capture complete" in html
    assert '<a href="tls.pcap">' in html and '<a href="tls.keylog">' in html
    assert "wireshark -o tls.keylog_file:tls.keylog tls.pcap" in html


def test_everything_is_escaped(tls):
    evil = "<script>alert(1)</script>"
    bad = dataclasses.replace(tls, title=evil, checks=[Check(evil, False, '"><img src=x onerror=1>')])
    html = report.page([bad], LANES)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "✘ FAIL" in html


def test_page_fetches_nothing(tls, plain):
    html = report.page([tls, plain], LANES, {"tls": {"capture": "tls.pcap"}})
    refs = re.findall(r'\b(?:src|href|xlink:href|action|poster|data)\s*=\s*"([^"]*)"', html)
    assert refs and all(not re.match(r"(?i)(https?:|//|ftp:)", r) for r in refs), refs
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html and "url(http" not in html and "<link" not in html and "<script" not in html


def _traffic_result(obs) -> TrafficResult:
    plain = {"trials": 160, "correct": 158, "accuracy": 158 / 160,
             "profiles": {str(d): 3000 + 2500 * d for d in range(8)}}
    padded = {"trials": 160, "correct": 19, "accuracy": 19 / 160, "profiles": {str(d): 34901 for d in range(8)}}
    return TrafficResult("traffic-analysis", "Traffic analysis", [Check("capture complete", True, "ok")],
                         _stats("ta"), obs, left=("no padding", ["a"]), right=("padded", ["b"]),
                         data={"documents": 8, "without_padding": plain, "with_padding": padded})


def test_traffic_analysis_plot_has_axes_units_labels_and_accuracy(tls):
    html = report.section(_traffic_result(tls.observation), LANES)
    assert 'class="chart traffic"' in html and 'class="chart accuracy"' in html
    assert "encrypted bytes (KiB)" in html and "document (the page fetched)" in html
    assert "guessed right (% of trials)" in html and "chance 1/8 = 12.5 %" in html
    assert "158/160 = 99 %" in html and "19/160 = 12 %" in html
    assert html.count('class="bar solid"') == 9 and html.count('class="bar hatched"') == 9   # 8 docs + accuracy
    assert 'fill="url(#hatch)"' in html                  # padded bars are hatched, not only coloured
    for d in range(8):
        assert f">doc {d}</text>" in html


def test_forward_secrecy_steps(tls):
    steps = [{"name": "encrypted pre-master secret (ClientKeyExchange)", "value": "ab" * 128, "note": "from <wire>"},
             {"name": "master secret", "value": "cd" * 48, "note": "PRF"}]
    sessions = [{"label": "RSA key exchange (TLS 1.2)", "attempt": {
                    "key_exchange": "RSA", "decrypted": True, "reason": "opened", "steps": steps,
                    "client_data": f"GET / HTTP/1.1\r\nCookie: session={SECRET}\r\n\r\n"}},
                {"label": "TLS 1.3", "attempt": {"key_exchange": "TLS 1.3 (ECDHE)", "decrypted": False,
                                                  "reason": "forward secret", "steps": []}}]
    result = ForwardSecrecyResult("forward-secrecy", "Forward secrecy", [], _stats("fs"), tls.observation,
                                  data={"sessions": sessions})
    html = report.section(result, LANES)
    assert '<ol class="steps">' in html
    assert html.index("encrypted pre-master secret") < html.index("master secret</strong>")
    assert "(256 chars)" in html                        # long values are cut, and say so
    assert "from &lt;wire&gt;" in html
    assert "✔ DECRYPTED" in html and "✘ not decrypted" in html
    assert f"Cookie: session={SECRET}" in html          # what the stolen key yields


def test_write_report_files_and_modes(tmp_path, tls, plain):
    index = report.write_report([tls, plain], tmp_path / "out", LANES)
    assert index == tmp_path / "out" / "index.html"
    for name in ("tls.pcap", "tls.keylog", "plaintext.pcap"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o600
    assert not (tmp_path / "out" / "plaintext.keylog").exists()       # no key log, no link
    assert (tmp_path / "out" / "tls.pcap").read_bytes() == tls.pcap
    html = index.read_text()
    assert '<a href="tls.pcap">' in html and '<a href="plaintext.pcap">' in html


def test_unwritable_out_is_a_usage_error(tmp_path, tls):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        report.write_report([tls], tmp_path / "file" / "sub")


def test_every_file_of_the_report_is_0600_even_over_looser_ones(tmp_path, tls, plain):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("index.html", "tls.pcap", "tls.keylog"):
        (out / name).write_text("old, world-readable")
        (out / name).chmod(0o644)
    report.write_report([tls, plain], out, LANES)
    for name in ("index.html", "tls.pcap", "tls.keylog", "plaintext.pcap"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert (out / "tls.keylog").read_text() == tls.keylog
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_an_interrupted_report_leaves_no_partial_file(tmp_path, tls, plain, monkeypatch):
    """Ctrl-C while the page is being made: nothing half-written, and no new capture without its page."""
    out = tmp_path / "out"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "page", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write_report([tls, plain], out, LANES)
    assert list(out.iterdir()) == []


def test_a_failed_rename_leaves_no_partial_file(tmp_path, tls, plain, monkeypatch):
    import os

    out = tmp_path / "out"
    real_replace = os.replace
    calls = []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(report.ReportError, match="No space left on device"):
        report.write_report([tls, plain], out, LANES)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert not (out / "index.html").exists()


def test_a_scenario_file_in_the_way_is_refused_before_anything_runs(tmp_path):
    out = tmp_path / "out"
    (out / "tls.pcap").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"tls.pcap is a folder"):
        report.check_out_dir(out, report.report_files(["plaintext", "tls"]))
    (out / "index.html").mkdir()
    with pytest.raises(UsageError, match=r"index.html is a folder"):
        report.check_out_dir(out)


def test_verify_note_says_when_a_command_was_not_graded():
    from labctl.scenarios import verify

    result = verify.VerifyResult("verify", "t", [], _stats("verify"), None, external="curl {url}",
                                 not_graded={"mtls-none": verify.external_skip(verify.select(["mtls-none"])[0])})
    assert "not graded" in result.html()


def test_report_boxes_never_break_words():
    assert "break-all" not in report.CSS and "overflow-wrap: anywhere" in report.CSS


@pytest.mark.parametrize("padded", [0.10, 0.12, 0.125, 0.14, 0.5])
def test_the_accuracy_label_stays_clear_of_the_chance_line(tls, padded):
    from labctl.scenarios.traffic_analysis import accuracy_svg

    svg = accuracy_svg({"documents": 8, "without_padding": {"accuracy": 0.99},
                        "with_padding": {"accuracy": padded}})
    chance = float(re.search(r'<line x1="([\d.]+)" y1="40"', svg).group(1))
    for x, text in re.findall(r'<text x="([\d.]+)"[^>]*class="small accuracy-label">([^<]+)<', svg):
        width = 7 * len(text)                            # 12 px text: at most 7 px a character
        assert float(x) > chance + 2 or float(x) + width < chance - 2, (x, text, chance)


def test_index_json_holds_every_event_the_page_draws(tmp_path, tls, plain):
    import json

    report.write_report([tls, plain], tmp_path / "out", LANES)
    doc = json.loads((tmp_path / "out" / "index.json").read_text())
    html = (tmp_path / "out" / "index.html").read_text()
    assert doc["schema"] == "tlslab.report/1" and [s["scenario"] for s in doc["scenarios"]] == ["tls", "plaintext"]
    for scenario in doc["scenarios"]:
        section = re.search(rf'data-scenario="{scenario["scenario"]}">(.*?)</section>', html, re.S).group(1)
        drawn = [int(f) for f in re.findall(r'data-frame="(\d+)"', section)]
        assert drawn and drawn == [ev["frame"] for ev in scenario["events"]][:report.MAX_EVENTS]
        assert all(ev["from"] in ADDRESSES and ev["to"] in ADDRESSES for ev in scenario["events"])
    assert SECRET not in json.dumps(doc["scenarios"][0])         # tls: never in clear, so never printed


def test_a_report_removes_an_earlier_reports_captures_it_does_not_rewrite(tmp_path, tls):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mitm.pcap").write_bytes(b"old")
    (out / "mine.pcap").write_bytes(b"the user's")
    report.write_report([tls], out, LANES, owned=report.report_files(["tls", "mitm"]))
    assert not (out / "mitm.pcap").exists() and (out / "mine.pcap").read_bytes() == b"the user's"
    assert (out / "tls.pcap").exists()


def test_the_proxy_lane_is_drawn_only_where_a_packet_touches_it_and_its_hop_to_the_server_turns_at_the_wire(plain):
    # The same capture, read as the proxy (offload's second hop) talking to the server: both lanes
    # lie right of the wire, and every packet went through it, so each arrow runs to the wire and turns.
    lanes = Lanes({**ADDRESSES, "client": "10.77.0.11", "proxy": synth.CLIENT_IP})
    evs = report.sequence(plain, lanes)
    svg = report.sequence_svg(plain.name, evs, lanes)
    assert re.findall(r'<g class="lane" data-lane="(\w+)">', svg) == ["client", "wire", "proxy", "server", "dns"]
    wire, proxy, server = (report.PROXY_LANE_X[k] for k in ("wire", "proxy", "server"))
    arrows = re.findall(r'data-from="(\w+)" data-to="(\w+)">.*?<(path d="M(\d+),[\d.]+ H(\d+) V[\d.]+ H(\d+)"|line)',
                        svg)
    assert arrows and all(kind.startswith("path") for *_, kind, _, _, _ in arrows)
    for frm, to, _, start, via, end in arrows:
        assert int(via) == wire
        assert (int(start), int(end)) == ((proxy, server) if (frm, to) == ("proxy", "server") else (server, proxy))
    # Read the usual way, nothing touches the proxy: four lanes, straight arrows across the wire.
    assert not re.search(r'<path d="M\d+,[\d.]+ H', _svg(plain)) and 'data-lane="proxy"' not in _svg(plain)
