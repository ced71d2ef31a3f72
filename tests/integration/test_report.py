"""`labctl report` on the real lab, opened in headless Chromium (Debian's `chromium` package).

What it proves: the page renders (a screenshot is taken), the rendered DOM has
the four lanes and the arrows, the plaintext secret is on the plaintext page
and the TLS secret is nowhere on the page, and opening the page makes no
network request.

How "no network request" is checked, on this Chromium (156, Debian bookworm):
Chromium runs with a dead proxy (`--proxy-server=http://127.0.0.1:9`) and no
name resolution (`--host-resolver-rules=MAP * ~NOTFOUND`), so nothing could
leave anyway, and writes a NetLog (`--log-net-log=FILE`, JSON). The browser
itself logs its own background requests (component updates, time sync);
requests made *by the page* carry the page's origin in their
`network_isolation_key` (`file://...`), so those are the ones that must be
absent. A control page with one external <img> shows the check does catch a
fetch. The page source is also checked for src/href outside its folder.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from labctl.tls import decrypt
from labctl.tls.analyzer import analyze_file
from tests import tshark
from tests.conftest import assert_one_line_error

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BASE_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]
SECRET = re.compile(rb"session=(s3cr3t-[A-Za-z0-9_-]+)")


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
    return subprocess.run([CHROMIUM, *BASE_FLAGS, *args], capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def page_requests(netlog: Path) -> set[str]:
    """URLs the page itself asked for (its origin is in the request's network isolation key)."""
    text = netlog.read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:        # Chromium may leave the trailing "]}" off when it exits
        doc = json.loads(text.rstrip().rstrip(",") + "]}")
    urls = set()
    for event in doc.get("events", []):
        params = event.get("params") or {}
        if "url" in params and str(params.get("network_isolation_key", "")).startswith("file://"):
            urls.add(params["url"])
    return {u for u in urls if not u.startswith("file:")}


@pytest.fixture(scope="module")
def rendered(session_lab, tmp_path_factory):
    """The report for tls and plaintext, written by the CLI, then opened in Chromium."""
    out = tmp_path_factory.mktemp("report")
    result = session_lab.run("report", "tls", "plaintext", "--out", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    index = out / "index.html"
    dom = chromium("--dump-dom", f"--log-net-log={out / 'netlog.json'}", index.as_uri())
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    return out, index, dom.stdout.decode("utf-8")


def sections(dom: str) -> dict[str, str]:
    return dict(re.findall(r'<section class="scenario" id="[^"]*" data-scenario="([^"]+)">(.*?)</section>', dom,
                           re.S))


def test_screenshot(rendered):
    out, index, _ = rendered
    shot = out / "report.png"
    proc = chromium(f"--screenshot={shot}", "--window-size=1280,2000", index.as_uri())
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    assert len(data) > 50_000           # a blank page compresses to a few kB; this one has diagrams and text


def test_lanes_and_arrows_in_the_rendered_page(rendered):
    _, _, dom = rendered
    found = sections(dom)
    assert set(found) == {"tls", "plaintext"}
    for name, html in found.items():
        lanes = re.findall(r'<g class="lane" data-lane="(\w+)">', html)
        assert lanes == ["client", "wire", "server", "dns"], name
        arrows = re.findall(r'<g class="arrow (\w+)"', html)
        assert len(arrows) >= 8, (name, arrows)
        assert "DNS query A server.lab.test" in html
    assert "enc" in re.findall(r'<g class="arrow (\w+)"', found["tls"])
    assert "enc" not in re.findall(r'<g class="arrow (\w+)"', found["plaintext"])
    assert "ClientHello · " in found["tls"] and "TCP data: GET / HTTP/1.1" in found["plaintext"]


def test_secret_in_the_plaintext_report_not_in_the_tls_one(rendered):
    out, index, dom = rendered
    # The plaintext secret, read off its capture; the TLS one, decrypted from its capture with its key log.
    plain_obs = analyze_file(out / "plaintext.pcap")
    [plain_secret] = {m.decode() for data in plain_obs.streams.values() for m in SECRET.findall(data)}
    conn = analyze_file(out / "tls.pcap").tls[0]
    plain = decrypt.decrypt_connection(
        [decrypt.Record(r.direction, r.content_type, r.version, r.fragment) for r in conn.records],
        decrypt.KeyLog.parse((out / "tls.keylog").read_text()), version=conn.server_hello.version,
        cipher_suite=conn.server_hello.cipher_suite, client_random=conn.client_hello.random,
        server_random=conn.server_hello.random)
    [tls_secret] = SECRET.findall(decrypt.application_data(plain, "c2s"))
    found = sections(dom)
    assert plain_secret in found["plaintext"]
    assert tls_secret.decode() not in dom and tls_secret.decode() not in index.read_text()


def test_pcap_and_keylog_beside_the_page_and_linked(rendered):
    out, index, dom = rendered
    for name in ("tls.pcap", "tls.keylog", "plaintext.pcap"):
        assert (out / name).stat().st_mode & 0o777 == 0o600
        assert f'href="{name}"' in dom


def test_the_page_makes_no_network_request(rendered, tmp_path):
    out, index, _ = rendered
    source = index.read_text()
    refs = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', source)
    assert all(not re.match(r"(?i)(https?:|//)", r) for r in refs), refs
    assert page_requests(out / "netlog.json") == set()
    # The control: the same check on a page that does fetch something catches it.
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><img src="http://report-test.invalid/x.png"><p>control</p>')
    chromium("--dump-dom", f"--log-net-log={tmp_path / 'control.json'}", control.as_uri())
    assert page_requests(tmp_path / "control.json") == {"http://report-test.invalid/x.png"}


def test_unknown_scenario_is_one_line(session_lab, tmp_path):
    result = session_lab.run("report", "tls", "no-such-scenario", "--out", str(tmp_path / "r"))
    assert_one_line_error(result, r"unknown scenario 'no-such-scenario'")
    assert result.returncode == 2
    assert not (tmp_path / "r").exists()


def test_unwritable_out_is_one_line(session_lab, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = session_lab.run("report", "tls", "--out", str(tmp_path / "file" / "report"))
    assert_one_line_error(result, r"is a file, not a folder")
    assert result.returncode == 2


# -- the views tell the truth: the events beside the page, held against tshark --------------------

@pytest.fixture(scope="module")
def attacks(session_lab, tmp_path_factory):
    """The report of the scenarios where the wire speaks for itself or draws many connections."""
    out = tmp_path_factory.mktemp("attacks")
    (out / "forward-secrecy.pcap").write_bytes(b"an earlier report's capture")       # stale: must go
    (out / "notes.txt").write_text("the user's own file")                            # not ours: must stay
    result = session_lab.run("report", "mitm", "dns-spoof", "verify", "traffic-analysis", "--out", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    return out, json.loads((out / "index.json").read_text())


def _frames(pcap: Path) -> dict[int, dict[str, str]]:
    """tshark's view of every IPv4 frame: its MACs, addresses, IP id and TLS records.

    With out-of-order segments reassembled, as the analyzer does: a segment
    that arrives after a later one (seen once in traffic-analysis, after the
    server's FIN) completes its record where it arrives.
    """
    rows = tshark.fields(pcap, "ip", "frame.number", "eth.src", "eth.dst", "ip.src", "ip.dst", "ip.id",
                         "tls.record.length", "tls.record.content_type", "tls.record.opaque_type",
                         options=("-o", "tcp.reassemble_out_of_order:TRUE"))
    return {int(r[0]): {"eth.src": r[1], "eth.dst": r[2], "ip.src": r[3], "ip.dst": r[4], "ip.id": r[5],
                        "lengths": r[6], "types": ",".join(t for t in (r[7], r[8]) if t)} for r in rows}


def test_every_event_is_a_real_frame_with_its_addresses_and_records(attacks):
    out, doc = attacks
    for scenario in doc["scenarios"]:
        frames = _frames(out / scenario["files"]["capture"])
        for ev in scenario["events"]:
            frame = frames[ev["frame"]]
            assert (frame["ip.src"], frame["ip.dst"]) == (ev["src"], ev["dst"]), (scenario["scenario"], ev)
            if ev["label"].startswith(("ClientHello", "ServerHello", "application_data", "alert", "handshake",
                                       "Certificate", "change_cipher_spec")):
                lengths = [int(x) for x in frame["lengths"].split(",") if x]
                assert ev["size"] in lengths, (scenario["scenario"], ev, frame)


def test_what_the_wire_sends_is_drawn_from_the_wire_and_every_packet_once(attacks):
    out, doc = attacks
    by_name = {s["scenario"]: s for s in doc["scenarios"]}
    for name in ("mitm", "dns-spoof"):
        scenario = by_name[name]
        wire_mac = scenario["lanes"]["wire_mac"]
        assert wire_mac and re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", wire_mac)
        frames = _frames(out / scenario["files"]["capture"])
        server, wire = scenario["lanes"]["addresses"]["server"], scenario["lanes"]["addresses"]["wire"]
        for ev in scenario["events"]:
            sent_by_wire = frames[ev["frame"]]["eth.src"] == wire_mac
            # Drawn from the wire exactly when the wire sent it itself (tshark's eth.src says who sent it).
            assert (ev["from"] == "wire") == (sent_by_wire or ev["src"] == wire), (name, ev)
        # Each frame at most once as a packet event; the wire's forwarded copies are not events.
        packet_frames = [ev["frame"] for ev in scenario["events"] if ev["kind"] == "control"
                         or ev["label"].startswith(("DNS", "TCP data"))]
        assert len(packet_frames) == len(set(packet_frames)), name
        ids = [frames[f]["ip.id"] for f in packet_frames]
        assert len(ids) == len(set(zip(ids, packet_frames))), name
        # Each DNS query once, though the wire recorded it coming in and going out (tshark counts both).
        sent = tshark.fields(out / scenario["files"]["capture"], "dns.flags.response == 0", "eth.src")
        queries = [ev for ev in scenario["events"] if ev["label"].startswith("DNS query")]
        assert queries and len(queries) == sum(1 for (mac,) in sent if mac != wire_mac), name
    mitm = by_name["mitm"]
    client = mitm["lanes"]["addresses"]["client"]
    hellos = [ev for ev in mitm["events"] if ev["label"].startswith("ServerHello") and ev["src"] == server
              and ev["dst"] == client]
    assert hellos and all(ev["from"] == "wire" for ev in hellos)       # the attacker's, as from the server's address
    upstream = [ev for ev in mitm["events"] if ev["label"].startswith("ServerHello") and ev["from"] == "server"]
    assert upstream and all(ev["to"] == "wire" for ev in upstream)      # the real server answers the wire
    spoof = by_name["dns-spoof"]
    forged = [ev for ev in spoof["events"] if ev["label"].startswith("DNS answer")
              and spoof["lanes"]["addresses"]["wire"] in ev["label"]]
    assert forged and all(ev["from"] == "wire" and ev["to"] == "client" for ev in forged)


def test_verify_draws_every_case_and_traffic_analysis_saves_both_phases(attacks):
    out, doc = attacks
    page = (out / "index.html").read_text()
    from labctl.scenarios import verify

    verify_section = page[page.index('data-scenario="verify"'):page.index('data-scenario="traffic-analysis"')]
    captions = re.findall(r'<details class="seq"[^>]*><summary>([^<:]+):', verify_section)
    assert captions == [c.name for c in verify.CASES]
    for name in ("expired", "wrong-host", "old-client"):
        block = verify_section[verify_section.index(f"<summary>{name}:"):]
        block = block[:block.index("</details>")]
        assert block.count('<g class="arrow ') >= 3, name           # its own handshake is drawn
    obs = analyze_file(out / "traffic-analysis.pcap")
    trials = [s for s in doc["scenarios"] if s["scenario"] == "traffic-analysis"][0]
    padded = [t for t in obs.tls if t.app_data_bytes("s2c") > 32 * 1024]
    assert len(obs.tls) >= 2 * 160 and padded                          # both phases, padded ones included
    assert trials["passed"]


def test_a_report_in_a_used_folder_leaves_no_stale_capture(attacks):
    out, _ = attacks
    assert not (out / "forward-secrecy.pcap").exists()
    assert (out / "notes.txt").read_text() == "the user's own file"
    for name in ("mitm.pcap", "index.json", "index.html"):
        assert (out / name).stat().st_mode & 0o777 == 0o600


def test_a_fin_riding_on_data_is_drawn_after_the_data(rendered):
    out, _, _ = rendered
    doc = json.loads((out / "index.json").read_text())
    for scenario in doc["scenarios"]:
        pcap = out / scenario["files"]["capture"]
        fins = {int(f) for (f,) in tshark.fields(pcap, "tcp.flags.fin == 1", "frame.number")}
        drawn = {ev["frame"] for ev in scenario["events"] if ev["label"].startswith("TCP FIN")}
        assert fins and drawn == fins, scenario["scenario"]
        for i, ev in enumerate(scenario["events"]):
            if ev["label"].startswith("TCP FIN") and i and scenario["events"][i - 1]["frame"] == ev["frame"]:
                assert scenario["events"][i - 1]["kind"] != "control"      # the data first, then the FIN


def test_verify_cases_each_draw_their_own_lookup_and_attacks_mask_what_the_attacker_never_got(attacks):
    out, doc = attacks
    from labctl.scenarios import verify

    [scenario] = [s for s in doc["scenarios"] if s["scenario"] == "verify"]
    assert [d["caption"].split(":")[0] for d in scenario["diagrams"]] == [c.name for c in verify.CASES]
    for case, diagram in zip(verify.CASES, scenario["diagrams"]):
        shown = [scenario["events"][i] for i in diagram["events"]]
        names = {ev["dns_name"] for ev in shown if ev["dns_name"]}
        assert names == {case.host}, (case.name, names)                 # its own lookup, no other case's
        assert sum(ev["label"].startswith("DNS query") for ev in shown) == 2, case.name   # safe and careless
    page = (out / "index.html").read_text()
    mitm = page[page.index('data-scenario="mitm"'):page.index('data-scenario="dns-spoof"')]
    assert "secret   s3cr3t-•••• (masked)" in mitm                       # the safe client's: never obtained
    assert len(set(re.findall(r"s3cr3t-[A-Za-z0-9_-]{20,}", mitm))) == 1  # the careless one's: the attacker has it
    # Every diagram's arrowheads are its own: folding one never takes another's away.
    markers = re.findall(r'<marker id="([^"]+)"', page)
    assert len(markers) == len(set(markers))
    for svg in re.findall(r"<svg class=\"seq\".*?</svg>", page, re.S):
        defined = set(re.findall(r'<marker id="([^"]+)"', svg))
        assert set(re.findall(r'url\(#([^)]+)\)', svg)) <= defined
