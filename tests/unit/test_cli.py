"""The command line itself: help that teaches, options anywhere, errors as one line."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from labctl.cli import Output, build_parser, main
from tests import tshark


def test_help_explains_what_the_lab_shows(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("up", "down", "status", "logs", "shell", "certs", "capture", "LAB_PROJECT", "SNI"):
        assert word in text


@pytest.mark.parametrize("argv", [["-q", "up"], ["up", "-q"], ["--project", "x", "up"], ["up", "--project", "x"]])
def test_common_options_go_before_or_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert args.command == "up"
    assert args.project in ("x", "tlslab")


def test_project_after_the_command_wins():
    assert build_parser().parse_args(["status", "-p", "mine"]).project == "mine"


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["explode"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'explode'" in capsys.readouterr().err


def test_lab_errors_become_one_line_with_status():
    err = io.StringIO()
    status = main(["--project", "Not A Name", "status"], Output(io.StringIO(), err))
    assert status == 2
    assert err.getvalue() == ("labctl: error: project name 'Not A Name' must be 1-40 lowercase letters, "
                              "digits, '-' or '_', starting with a letter or digit\n")


def test_capture_stop_without_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["capture", "stop"])
    assert exit_info.value.code == 2


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Output(out, err))
    return status, out.getvalue(), err.getvalue()


def test_analyze_a_file_that_is_not_a_capture(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is a text file, not a capture; it is long enough\n")
    status, out, err = run_cli("analyze", str(path))
    assert status == 2 and out == ""
    assert err.startswith("labctl: error: ") and err.count("\n") == 1 and "not a pcap or pcapng file" in err


def test_analyze_a_missing_file():
    status, _, err = run_cli("analyze", "/nonexistent/capture.pcap")
    assert status == 2 and "cannot read /nonexistent/capture.pcap: No such file or directory" in err


def test_analyze_says_when_a_capture_has_no_tls(tmp_path):
    from tests import synth

    session = synth.plain_session(tmp_path, request=synth.DEFAULT_REQUEST, response=synth.DEFAULT_RESPONSE)
    status, out, _ = run_cli("analyze", str(session.pcap))
    assert status == 0 and "no TLS in this capture" in out


def test_analyze_json_has_the_documented_schema(tmp_path):
    import json

    from tests import synth

    session = synth.tls_session(tmp_path, max_version="1.2")
    status, out, _ = run_cli("analyze", "--json", str(session.pcap))
    doc = json.loads(out)
    assert status == 0 and doc["schema"] == "tlslab.observation/1"
    assert set(doc) >= {"packets", "wire_bytes", "duration", "flows", "dns", "tls"}
    tls = doc["tls"][0]
    assert tls["version"] == "TLS 1.2" and tls["client_hello"]["sni"] == "server.lab.test"
    assert tls["certificates_in_clear"][0]["sans"] == ["server.lab.test"]


def test_an_unexpected_exception_is_one_line_naming_its_type(monkeypatch):
    import labctl.cli as cli

    def explode(args, io):
        raise ValueError("something nobody foresaw\nsecond line")

    monkeypatch.setattr(cli, "cmd_scenarios", explode)
    err = io.StringIO()
    status = main(["scenarios"], Output(io.StringIO(), err))
    assert status == 1
    assert err.getvalue() == ("labctl: error: unexpected ValueError: something nobody foresaw (a bug in labctl: "
                              "run again with --traceback and report what it prints)\n")


def test_traceback_shows_the_unexpected_exception(monkeypatch):
    import labctl.cli as cli

    def explode(args, io):
        raise ValueError("boom")

    monkeypatch.setattr(cli, "cmd_scenarios", explode)
    with pytest.raises(ValueError, match="boom"):
        main(["scenarios", "--traceback"], Output(io.StringIO(), io.StringIO()))


@pytest.mark.parametrize("ref", ["debian:bookworm-slim", "127.0.0.1:5000/debian:bookworm-slim",
                                 "registry.example/team/debian", "debian@sha256:" + "a" * 64,
                                 "Registry.Example:5000/debian:Bookworm", "localhost/debian"])
def test_pull_from_takes_image_references(ref):
    from labctl.images import check_reference

    assert check_reference(ref) == ref


@pytest.mark.parametrize("ref", ["http://registry/debian", "Debian:bookworm", "registry/Debian", "debian:",
                                 "", "a b", "debian:-x", "debian:bookworm\n"])
def test_pull_from_refuses_what_is_not_a_reference(ref):
    from labctl.errors import UsageError
    from labctl.images import check_reference

    with pytest.raises(UsageError, match="is not an image reference"):
        check_reference(ref)


def test_a_reader_that_leaves_early_is_not_an_error(monkeypatch):
    """`labctl status | head -1`: the broken pipe is not "a bug in labctl"; it reaches labctl.entry,
    which exits 0 quietly."""
    import labctl.cli as cli

    def reader_gone(args, io):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "cmd_scenarios", reader_gone)
    err = io.StringIO()
    with pytest.raises(BrokenPipeError):
        main(["scenarios"], Output(io.StringIO(), err))
    assert err.getvalue() == ""


def test_a_project_name_with_a_trailing_newline_is_refused():
    from labctl.errors import UsageError
    from labctl.lab import check_project

    with pytest.raises(UsageError, match="must be 1-40 lowercase letters"):
        check_project("lab\n")


def test_an_engine_that_goes_away_mid_command_is_one_line_not_a_bug(monkeypatch):
    import requests

    import labctl.cli as cli

    def engine_gone(args, io):
        raise requests.exceptions.ConnectionError(("Connection aborted.", ConnectionResetError(104, "reset")))

    monkeypatch.setattr(cli, "cmd_scenarios", engine_gone)
    err = io.StringIO()
    assert main(["scenarios"], Output(io.StringIO(), err)) == 3
    assert err.getvalue().startswith("labctl: error: the Docker engine stopped answering (Connection aborted.)")
    assert "a bug in labctl" not in err.getvalue() and err.getvalue().count("\n") == 1


# --- labctl analyze FILE --keylog KEYS (the cases: tests/unit/test_cases_keylog.py) ---------------------

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
KEYLOGS = CAPTURES / "keylogs"
QUIRKS_EACH = {"c2s": 27, "s2c": 171}        # tshark, with keylogs/quirks_clean.txt, on each connection


def test_analyze_keylog_shows_each_connections_data():
    pcap, keys = CAPTURES / "gen_tls12_renego.pcap", CAPTURES / "gen_tls12_renego.keylog"
    status, out, err = run_cli("analyze", str(pcap), "--keylog", str(keys))
    assert status == 0 and err == ""
    assert f"key log {keys}: 2 entries read, no line skipped" in out
    assert "decrypted with the key log: 1 of 1 TLS connection" in out
    assert "↑ client → server: 39 bytes of application data in 2 records" in out
    assert "↓ server → client: 39 bytes of application data in 2 records" in out
    assert "keys of 2 handshakes used" in out


def test_analyze_keylog_says_which_lines_were_skipped():
    status, out, _ = run_cli("analyze", str(CAPTURES / "gen_keylog_quirks.pcap"), "--keylog", str(KEYLOGS / "quirks.txt"))
    assert status == 0
    assert "6 entries read, 4 lines skipped (as Wireshark skips what it cannot use):" in out
    assert "  line 8: the client random is 31 bytes, not 32 — \"CLIENT_RANDOM 622b63db" in out
    assert "decrypted with the key log: 2 of 2 TLS connections" in out


def test_analyze_keylog_json_has_every_byte_and_the_documented_schema():
    pcap, keys = CAPTURES / "gen_keylog_quirks.pcap", KEYLOGS / "quirks.txt"
    status, out, _ = run_cli("analyze", "--json", str(pcap), "--keylog", str(keys))
    doc = json.loads(out)
    assert status == 0 and doc["schema"] == "tlslab.observation/1"
    assert doc["keylog"]["sources"] == [str(keys)] and doc["keylog"]["entries"] == 6
    assert [s["line"] for s in doc["keylog"]["skipped"]] == [7, 8, 9, 10]
    assert set(doc["keylog"]["skipped"][0]) == {"source", "line", "reason", "text"}
    assert len(doc["decryption"]) == len(doc["tls"]) == 2
    for stream, (entry, port) in enumerate(zip(doc["decryption"], (14506, 14507))):
        assert set(entry) == {"flow", "decrypted", "reason", "handshakes", "c2s", "s2c", "not_decrypted", "lost"}
        assert entry["flow"] == doc["tls"][stream]["flow"] and entry["decrypted"] is True
        theirs = tshark.decrypted_streams(pcap, KEYLOGS / "quirks_clean.txt", stream, port)
        for direction in ("c2s", "s2c"):
            assert base64.b64decode(entry[direction]["base64"]) == theirs[direction]
            assert entry[direction]["bytes"] == QUIRKS_EACH[direction] and entry[direction]["records"] == 1


def test_analyze_keylog_json_lists_lost_and_undecrypted_records():
    status, out, _ = run_cli("analyze", "--json", str(CAPTURES / "gen_tls12_chacha_gap.pcap"), "--keylog",
                             str(CAPTURES / "gen_tls12_chacha_gap.keylog"))
    [entry] = json.loads(out)["decryption"]
    assert status == 0 and entry["lost"] == [{"direction": "s2c", "before_record": 17, "records": 2}]
    assert entry["s2c"]["bytes"] == 5545 - 1024 and entry["not_decrypted"] == []


def test_a_connection_that_cannot_be_decrypted_says_why():
    pcap = CAPTURES / "gen_tls12_renego.pcap"
    status, out, _ = run_cli("analyze", str(pcap), "--keylog", str(KEYLOGS / "quirks_clean.txt"))
    assert status == 0 and "decrypted with the key log: 0 of 1 TLS connection" in out
    assert "  not decrypted: the key log has no secrets for this connection's client random" in out
    status, out, _ = run_cli("analyze", "--json", str(pcap), "--keylog", str(KEYLOGS / "quirks_clean.txt"))
    [entry] = json.loads(out)["decryption"]
    assert entry["decrypted"] is False and "no secrets for this connection's client random" in entry["reason"]
    assert entry["c2s"] == {"bytes": 0, "records": 0, "base64": ""}


def test_an_unsupported_cipher_suite_is_named():
    status, out, _ = run_cli("analyze", str(CAPTURES / "wsnotes_tls_tls-null.pcapng"), "--keylog",
                             str(KEYLOGS / "quirks_clean.txt"))
    assert status == 0
    assert "not decrypted: cipher suite 0x003B is not supported (TLS_RSA_WITH_NULL_SHA256)" in out


@pytest.mark.parametrize("keys, message", [
    ("/nonexistent/keys.txt", "--keylog: cannot read /nonexistent/keys.txt: No such file or directory"),
    (str(CAPTURES / "gen_tls12_renego.pcap"), "holds no usable key log entry"),
    (str(CAPTURES), "is a folder, not a file"),
])
def test_a_bad_key_log_is_one_line_and_exit_2(keys: str, message: str):
    status, out, err = run_cli("analyze", str(CAPTURES / "gen_tls12_renego.pcap"), "--keylog", keys)
    assert status == 2 and out == ""
    assert err.startswith("labctl: error: ") and err.count("\n") == 1 and message in err


def test_analyze_uses_the_keys_a_pcapng_carries_and_agrees_with_tshark():
    """No --keylog: the Decryption Secrets Block is the key log, as tshark reads it with no options."""
    pcap = CAPTURES / "pcapng_dsb_editcap_tls13.pcapng"
    status, out, err = run_cli("analyze", str(pcap), "--json")
    assert status == 0, err
    doc = json.loads(out)
    assert doc["keylog"]["sources"] == ["the capture's Decryption Secrets Block"]
    [result] = doc["decryption"]
    ours = {d: base64.b64decode(result[d]["base64"]) for d in ("c2s", "s2c")}
    assert (len(ours["c2s"]), len(ours["s2c"])) == (83, 160)          # tshark -z follow,tls,raw,0 (no options)
    theirs = tshark.decrypted_streams(pcap, None)
    assert ours == theirs


def test_a_big_capture_is_read_in_bounded_memory_and_says_so(tmp_path, monkeypatch):
    """Above LEAN_ABOVE, analyze keeps previews of application data and says so; records are the same."""
    from labctl import cli
    pcap = CAPTURES / "heise_drop_frame80.pcap"
    _, whole, _ = run_cli("analyze", str(pcap), "--json")
    monkeypatch.setattr(cli, "LEAN_ABOVE", 0)
    status, lean, err = run_cli("analyze", str(pcap), "--json")
    assert status == 0, err
    a, b = json.loads(whole), json.loads(lean)
    assert a["application_data_kept"] == "whole" and b["application_data_kept"].startswith("first 256 bytes")
    assert [c["records"] for c in a["tls"]] == [c["records"] for c in b["tls"]]
    assert a["flows"] == b["flows"]
    _, text, _ = run_cli("analyze", str(pcap))
    assert "read in bounded memory" in text


def test_the_clients_options_may_come_before_its_host(monkeypatch):
    """`labctl client --browse www.lab.test --secret x`: the options before HOST go to the client too,
    in order (argparse's REMAINDER starts only at HOST); anything else unknown is still an error."""
    seen = {}

    def fake_client(args, io):
        seen["client_args"] = args.client_args
        return 0

    import labctl.cli as cli

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["client"].set_defaults(func=fake_client)
    assert main(["client", "--dns", "dot", "--browse", "www.lab.test", "--secret", "x"],
                Output(io.StringIO(), io.StringIO())) == 0
    assert seen["client_args"] == ["--dns", "dot", "--browse", "www.lab.test", "--secret", "x"]
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--browse"], Output(io.StringIO(), io.StringIO()))
    assert exit_info.value.code == 2
