"""The command line itself: help that teaches, options anywhere, errors as one line."""

from __future__ import annotations

import io

import pytest

from labctl.cli import Output, build_parser, main


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
