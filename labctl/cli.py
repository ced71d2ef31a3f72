"""labctl: bring the TLS wire lab up, look inside, and take it down.

Every error is one line on stderr (`labctl: error: ...`) with a non-zero exit
status; `--traceback` shows the Python traceback behind it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import io as io_module
import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, NoReturn, TextIO

import docker.errors
import requests

from . import __version__, bringup, capture, certs, images, render, turn
from .compose import find_tool
from .errors import DockerUnavailable, ExitStatus, LabError, UsageError
from .files import shown
from .interrupts import Terminated, shielded
from .home import find_home
from .lab import DEFAULT_PROJECT, DEFAULT_TIMEOUT, SERVICES, TIMEOUT_SETTING, Lab, check_service, check_timeout

if TYPE_CHECKING:
    from .verdict import Result

EPILOG = """\
what the lab shows:
  TLS hides what you say (URLs, passwords, cookies) but not who talks to whom,
  on which port, which name was looked up, the SNI, or roughly how much was
  said and when. The wire container sits on the path between client and
  server and records every packet, so you can check each claim on real bytes.

typical session:
  labctl up                                  certs, images, containers, health
  labctl status                              who is where
  labctl capture start demo                  start recording on the wire
  labctl client server.lab.test --secret hunter2
  labctl capture stop demo --out demo.pcap   open it in Wireshark
  labctl down                                remove containers and network

where things live:
  The lab itself (compose.yaml, services/) comes with labctl: the clone's own
  files, or a copy inside the installed package. Certificates are made on
  this machine, in certs/ of the clone or, for an installed labctl, in the
  per-user data folder (~/.local/share/tlslab/certs on Linux), and reach the
  containers in the lab's own named volumes: nothing of this machine is
  mounted, so a remote engine works the same.

engine:
  labctl talks to one Docker engine, chosen as the docker CLI chooses:
  DOCKER_HOST, else DOCKER_CONTEXT, else the current `docker context`.
  Compose gets the same one. `labctl status` names it.

environment:
  LAB_PROJECT       lab name, as --project (default: tlslab)
  LAB_HOME          an existing folder for labctl's state (certs/); if it also
                    holds compose.yaml and services/, the lab is built from them
  LAB_CERTS_DIR     certificates folder (default: certs/ in LAB_HOME, the
                    clone, or the per-user data folder)
  LAB_COMPOSE       auto (default: v2 if present, else v1), v2 or v1
  LAB_IMAGE_PREFIX  image name prefix (default: tlslab)
  LAB_BASE_SOURCE   base image: auto (pull, else build locally), pull, local
  LAB_PULL_FROM     what the pull path pulls (default: debian:bookworm-slim)
  LAB_TIMEOUT       seconds any one step on the lab may take, as --timeout
                    (default: 60)

one lab, many hands:
  Runs on one lab take turns (a second one says "waiting for another run on
  lab 'NAME'…"), so no verdict depends on what else runs there. Ctrl-C or
  SIGTERM at any moment stops what the command started on the lab first
  (capture, attacker, client) and exits 130 or 143.

exit status:
  0 done (every check passed)   1 a check or a step failed   2 bad input
  3 Docker or a host tool unavailable   130/143 interrupted (SIGINT/SIGTERM)
"""


class Output:
    """Where labctl writes; tests swap in buffers to read what a user would see."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet

    def result(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def progress(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.err, flush=True)


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(project=args.project, base_source=getattr(args, "base_source", None),
               pull_from=getattr(args, "pull_from", None), timeout=args.timeout)


# -- commands ------------------------------------------------------------------

def cmd_up(args: argparse.Namespace, io: Output) -> int:
    lab = _lab(args)
    tool = find_tool()
    io.progress(f"bringing up lab '{lab.project}' with {tool.label} on {lab.engine.label}")
    report = bringup.up(lab, io.progress)
    io.result(render.up_json(report) if args.json else render.up_text(report))
    return ExitStatus.OK


def cmd_down(args: argparse.Namespace, io: Output) -> int:
    lab = _lab(args)
    if bringup.down(lab, volumes=args.volumes):
        io.result(f"lab '{lab.project}' removed" + (" with its captures and certificate volumes"
                                                    if args.volumes else ""))
    else:
        io.result(f"lab '{lab.project}' is not up; nothing to remove")
    return ExitStatus.OK


def cmd_status(args: argparse.Namespace, io: Output) -> int:
    lab = _lab(args)
    states = lab.states()
    running = any(s.state != "absent" for s in states)
    network = lab.network()
    net = lab.net() if network is not None else ""
    version = lab.docker.version()
    engine = {"host": lab.engine.host, "source": lab.engine.source,
              "server": f"{version.get('Platform', {}).get('Name') or 'Docker Engine'} {version.get('Version', '?')}"}
    if args.json:
        io.result(render.status_json(lab.project, net, states if running else [], find_tool().label, engine))
    elif not running:
        io.result(f"lab '{lab.project}' is not up on {render.engine_text(engine)} — `labctl up` starts it")
    else:
        io.result(render.status_text(lab.project, net, states, engine))
    healthy = running and all(s.state == "running" and s.health == "healthy" for s in states)
    return ExitStatus.OK if healthy else ExitStatus.ERROR


def cmd_logs(args: argparse.Namespace, io: Output) -> int:
    if args.service is not None:
        check_service(args.service)
    lab = _lab(args)
    if not lab.containers():
        raise LabError(f"lab '{lab.project}' is not up; there are no logs — `labctl up` starts it")
    argv = ["logs", "--no-color", f"--tail={args.tail}"]
    if args.follow:
        argv.append("--follow")
    if args.service:
        argv.append(args.service)
    return lab.compose().stream(*argv)


def cmd_shell(args: argparse.Namespace, io: Output) -> int:
    check_service(args.service)
    if args.user is not None and not USER_RE.fullmatch(args.user):
        raise UsageError(f"--user {_shown(args.user)} is not a user name or uid[:gid] (e.g. lab, root, 10001)")
    _text("command", args.command)
    lab = _lab(args)
    container = lab.container(args.service)
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise UsageError("`labctl shell` needs the docker command-line tool on PATH")
    command = args.command or ["/bin/bash"]
    flags = ["-i", "-t"] if sys.stdin.isatty() and sys.stdout.isatty() else ["-i"]
    user = ["--user", args.user] if args.user else []
    os.execvpe(docker_cli, [docker_cli, "exec", *flags, *user, container.name, *command],
               lab.engine.subprocess_env())
    return ExitStatus.ERROR  # not reached


def cmd_certs(args: argparse.Namespace, io: Output) -> int:
    lab = _lab(args)
    tightened: list[str] = []
    if certs.exist(lab.certs_dir) and not args.force:
        tightened = certs.tighten(lab.certs_dir)      # a key readable by others is made 0600, and said
        certs.check(lab.certs_dir)
        made = certs.layout(lab.certs_dir)
        verb = "present (use --force to make new ones)"
    else:
        up = _is_up_if_reachable(lab, io)
        # Not under a run's feet: a run reads keys from this folder too (forward-secrecy's stolen
        # key), so the new set is written, and the lab refilled, within the lab's turn.
        guard = (turn.taken(lab, "certs --force", io.progress) if up and lab.service_state("wire") == "running"
                 else contextlib.nullcontext())
        with guard:
            made = certs.generate(lab.certs_dir)
            certs.check(lab.certs_dir)
            if up:
                io.progress(f"refilling the certificate volumes of lab '{lab.project}'")
                bringup.refresh_certs(lab, io.progress)
        verb = "generated"
    if args.json:
        io.result(json.dumps({"schema": "tlslab.certs/1", "dir": str(lab.certs_dir), "status": verb.split()[0],
                              "tightened": tightened,
                              "files": [{"path": str(f.path), "mounted_in": f.mounted_in, "private": f.private,
                                         "mode": None if f.mode() is None else f"{f.mode():04o}"}
                                        for f in made]}, indent=2))
    else:
        io.result(render.certs_text(verb, lab.certs_dir, made, tightened))
    return ExitStatus.OK


def _is_up_if_reachable(lab: Lab, io: Output) -> bool:
    """Certificates are made on this machine: no engine is needed unless a lab uses them."""
    try:
        return lab.is_up()
    except DockerUnavailable:
        io.progress(f"the engine ({lab.engine.label}) does not answer, so no lab was refilled: "
                    f"`labctl{lab.flag} up` gives a lab the new set")
        return False


def cmd_build(args: argparse.Namespace, io: Output) -> int:
    lab = _lab(args)
    base, how = images.ensure_base(lab.docker, lab.image_prefix, lab.home.services,
                                   lab.base_source, progress=lambda m: io.progress(f"  {m}"),
                                   pull_from=lab.pull_from)
    io.progress(render.dotted("base image", f"{base} ({how})"))
    tags, built = bringup.ensure_images(lab, base, io.progress)
    rows = [(service, f"{lab.image_prefix}-{service}:{tag}", "built" if service in built else "present")
            for service, tag in tags.items()]
    io.result(render.table(("SERVICE", "IMAGE", "STATUS"), [("base", base, how), *rows]))
    return ExitStatus.OK


def _client_program() -> ModuleType:
    """services/client/client.py of the lab files, loaded here: its argument checks run on this
    machine, before anything reaches the lab."""
    path = find_home().services / "client" / "client.py"
    spec = importlib.util.spec_from_file_location("tlslab_client_program", path)
    if spec is None or spec.loader is None:
        raise LabError(f"the lab's client program {path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_client_args(client_args: list[str]) -> str | None:
    """UsageError for arguments client.py would refuse (its own message); the help text for --help."""
    _text("client argument", client_args)
    program = _client_program()
    out, err = io_module.StringIO(), io_module.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            program.parse(client_args)
    except SystemExit as exc:
        if exc.code == 0:
            return out.getvalue().replace("usage: client.py", "usage: labctl client")
        last = (err.getvalue().strip().splitlines() or ["bad arguments"])[-1]
        raise UsageError(f"client: {last.removeprefix('client.py: error: ')} "
                         "(`labctl client-help` lists the client's options)") from None
    return None


def cmd_client(args: argparse.Namespace, io: Output) -> int:
    client_args = args.client_args[1:] if args.client_args[:1] == ["--"] else args.client_args
    if not client_args:
        raise UsageError("say which server to talk to, e.g. `labctl client server.lab.test --secret hunter2` "
                         "(`labctl client-help` lists the client's options)")
    help_text = check_client_args(client_args)
    if help_text is not None:
        io.result(help_text.rstrip())
        return ExitStatus.OK
    lab = _lab(args)
    lab.require_running()
    with turn.taken(lab, "client", io.progress):
        status, out, err = _client_exec(lab, client_args)
    if status in (124, 137):
        raise LabError(f"the client did not finish within {lab.timeout:g} s ({TIMEOUT_SETTING} sets it) — "
                       f"is the server answering? (`labctl{lab.flag} logs server`)")
    if status == 2:
        raise UsageError(f"client: {(err.strip().splitlines() or ['bad arguments'])[-1]}")
    try:
        report = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        last = (err.strip().splitlines() or out.strip().splitlines() or [f"exit status {status}"])[-1]
        raise LabError(f"the client printed no report: {last}") from None
    io.result(json.dumps(report, indent=2) if args.json else render.client_text(report))
    return ExitStatus.OK if report.get("ok") else ExitStatus.ERROR


def _client_exec(lab: Lab, client_args: list[str]) -> tuple[int, str, str]:
    """client.py once in the client container; interrupted, it is stopped there too."""
    tag = f"client-{uuid.uuid4().hex[:8]}"
    lab.run_tag = tag
    try:
        # The client's own network timeout is the lab's, unless given.
        own = [] if any(a == "--timeout" or a.startswith("--timeout=") for a in client_args) \
            else ["--timeout", f"{lab.timeout:g}"]
        return lab.exec("client", ["python3", "/app/client.py", *client_args, *own], user="lab",
                        timeout=2 * lab.timeout)
    except KeyboardInterrupt:
        with shielded():
            lab.kill_run_processes(tag)
        raise
    finally:
        lab.run_tag = None


def cmd_client_help(args: argparse.Namespace, io: Output) -> int:
    # The client program is in the lab files: its options are known without the lab up.
    io.result((check_client_args(["--help"]) or "").rstrip())
    return ExitStatus.OK


def cmd_capture(args: argparse.Namespace, io: Output) -> int:
    if args.name is not None and not CAPTURE_NAME_RE.fullmatch(args.name):
        raise UsageError(f"capture name {_shown(args.name)} must be 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    if args.action == "start" and args.name.startswith("run-"):
        raise UsageError(f"capture name {_shown(args.name)}: names starting with 'run-' are the scenarios' own "
                         "(they replace each other); choose another")
    lab = _lab(args)
    if args.action == "start":
        try:
            with shielded():
                capture.start(lab, args.name)
        except KeyboardInterrupt:
            # Started as the interrupt came: the user did not get it, so it does not stay.
            with shielded():
                if any(c["name"] == args.name and c["running"] for c in capture.listing(lab)):
                    capture.stop(lab, args.name)
                    capture.remove(lab, args.name)
            raise
        io.result(f"capturing on the wire of lab '{lab.project}' as {args.name!r}; "
                  f"`labctl capture stop {args.name}` ends it")
        return ExitStatus.OK
    if args.action in ("stop", "get"):
        out = capture.check_output(args.out, "--out") if args.out is not None else None   # before it stops
        keylog = _capture_keylog(args)
        if not any(c["name"] == args.name for c in capture.listing(lab)):
            raise UsageError(f"no capture named {args.name!r} on the wire of lab '{lab.project}' — "
                             f"`labctl{lab.flag} capture list` shows what is there")
    no_keys = "no --keylog FILE was given to embed"
    if args.action == "stop":
        stats = capture.stop(lab, args.name)
        saved = capture.save_capture(capture.read(lab, args.name), out, keylog) if out else None
        if args.json:
            io.result(json.dumps({"schema": "tlslab.capture/1", **stats.__dict__,
                                  "saved_to": str(saved.path) if saved else None,
                                  "format": saved.format if saved else None,
                                  "keys_embedded": saved.keys_embedded if saved else False,
                                  "tls_connections": saved.tls_connections if saved else 0,
                                  "connections_with_keys": saved.connections_with_keys if saved else 0},
                                 indent=2))
        else:
            io.result(render.capture_text(stats, saved.note(no_keys) if saved else None))
        return ExitStatus.OK if stats.complete else ExitStatus.ERROR
    if args.action == "get":
        assert out is not None                              # argparse: get needs --out
        io.result(f"saved {capture.save_capture(capture.read(lab, args.name), out, keylog).note(no_keys)}")
        return ExitStatus.OK
    captures = capture.listing(lab)
    rows = [(c["name"], str(c["bytes"]), "running" if c["running"] else "stopped") for c in captures]
    if args.json:
        io.result(json.dumps({"schema": "tlslab.captures/1", "captures": captures}, indent=2))
    else:
        io.result(render.table(("NAME", "BYTES", "STATE"), rows) if rows else "no captures on the wire yet")
    return ExitStatus.OK


def _capture_keylog(args: argparse.Namespace) -> str:
    """`capture stop|get --keylog FILE`: the key log to embed in the --out pcapng, read and checked now."""
    if args.keylog is None:
        return ""
    if args.out is None or capture.format_of(args.out) != "pcapng":
        raise UsageError("--keylog embeds a key log in a pcapng: give --out NAME.pcapng too"
                         + (f" (not {shown(args.out)})" if args.out is not None else ""))
    return capture.read_keylog(args.keylog)


def _output_path(value: str | None, many: bool, what: str, names: list[str], ext: str = "") -> Path | None:
    """Check where --pcap/--keylog will write before running anything (nothing is lost at the end).
    With `all`, the folder gets NAME.EXT each (EXT: WHAT unless given)."""
    if value is None:
        return None
    if many:
        return capture.check_output_dir(value, f"--{what}", [f"{name}.{ext or what}" for name in names])
    return capture.check_output(value, f"--{what}")


def _pcap_format(args: argparse.Namespace, many: bool) -> str:
    """The format `run --pcap` writes: --pcap-format if given, else the file's suffix (.pcapng: pcapng),
    else pcap. UsageError if --pcap-format comes without --pcap, or contradicts the file's suffix."""
    given: str | None = args.pcap_format
    if given is not None and args.pcap is None:
        raise UsageError(f"--pcap-format {given} says how --pcap writes the capture: give --pcap too")
    if many or args.pcap is None:
        return given or "pcap"
    suffix = capture.format_of(args.pcap)
    if given is not None and suffix is not None and suffix != given:
        raise UsageError(f"--pcap {shown(args.pcap)} ends in .{suffix} but --pcap-format is {given}: "
                         "give one or the other")
    return given or suffix or "pcap"


# A capture bigger than this is read in bounded memory (analyze with keep=False): its application
# data is previewed, not kept. With a key log (given, or embedded) every byte is kept for decryption.
LEAN_ABOVE = 64 << 20


def cmd_analyze(args: argparse.Namespace, io: Output) -> int:
    from .tls import decrypt
    from .tls.analyzer import analyze_file
    from .tls.pcapng import keylog_text

    # The key log is read first: a bad one is one line and exit 2 before a large capture is read.
    keylog = decrypt.read_keylog(args.keylog) if args.keylog is not None else None
    sources = [args.keylog] if args.keylog is not None else []
    try:
        big = os.stat(args.pcap).st_size > LEAN_ABOVE
    except (OSError, ValueError):
        big = False                              # analyze_file says what is wrong with it, in one line
    keep = keylog is not None or not big
    observation = analyze_file(args.pcap, keep=keep)      # the name as typed: '' is refused as such, not read as '.'
    embedded = keylog_text(observation.secrets)
    if embedded:
        if not keep:
            observation = analyze_file(args.pcap, keep=True)    # keys inside: read again, keeping every byte
        source = "the capture's Decryption Secrets Block"
        inside = decrypt.KeyLog.parse(embedded, source)
        keylog = keylog.merged(inside) if keylog is not None else inside
        sources.append(source)
    results = None
    if keylog is not None:
        results = [decrypt.decrypt_records(decrypt.captured(conn.records), keylog) for conn in observation.tls]
    if args.json:
        doc = {"schema": "tlslab.observation/1", "file": args.pcap, **observation.to_dict()}
        if keylog is not None and results is not None:
            doc["keylog"] = {"sources": sources, "entries": keylog.entries,
                             "skipped": [s.to_dict() for s in keylog.skipped]}
            doc["decryption"] = [{"flow": conn.flow.label, **result.to_dict()}
                                 for conn, result in zip(observation.tls, results)]
        io.result(json.dumps(doc, indent=2))
    else:
        text = render.observation_text(args.pcap, observation)
        if keylog is not None and results is not None:
            text += "\n\n" + render.decryption_text(sources, keylog, observation.tls, results)
        io.result(text)
    return ExitStatus.OK


def cmd_stolen_key(args: argparse.Namespace, io: Output) -> int:
    from .tls import stolenkey

    attempts = stolenkey.attack_files(args.pcap, args.key)    # bad input of either kind: one line, exit 2
    if args.json:
        io.result(json.dumps({"schema": "tlslab.stolenkey/1", "attempts": [
            {"flow": a.flow, "version": a.version_shown, "cipher": a.cipher, "key_exchange": a.key_exchange,
             "decrypted": a.decrypted, "reason": a.reason,
             "steps": [{"name": s.name, "value": s.value, "note": s.note} for s in a.steps],
             "client_data": a.client_data.decode("latin-1"), "server_data": a.server_data.decode("latin-1")}
            for a in attempts]}, indent=2))
    else:
        lines = []
        for a in attempts:
            lines += [render.dotted("connection", a.flow), render.dotted("negotiated", f"{a.version_shown} {a.cipher}"),
                      render.dotted("key exchange", a.key_exchange),
                      render.dotted("decrypted", "YES" if a.decrypted else "no"), f"  {a.reason}"]
            for step in a.steps:
                lines.append(f"  {step.name}: {step.value[:64]}{'…' if len(step.value) > 64 else ''}")
            if a.decrypted:
                lines += [f"  ↑ {line}" for line in a.client_data.decode("latin-1").split("\r\n")[:8] if line]
            lines.append("")
        io.result("\n".join(lines).rstrip())
    return ExitStatus.OK if any(a.decrypted for a in attempts) else ExitStatus.ERROR


def cmd_scenarios(args: argparse.Namespace, io: Output) -> int:
    from . import scenarios

    found = scenarios.all_scenarios()
    if args.json:
        io.result(json.dumps({"schema": "tlslab.scenarios/1", "scenarios": [
            {"name": s.name, "title": s.title, "summary": s.summary, "checks": list(s.checks),
             "keylog": s.keylog, "options": list(s.options)} for s in found]}, indent=2))
    else:
        io.result(render.scenarios_text([(s.name, s.summary, s.checks) for s in found]))
    return ExitStatus.OK


def _checked(lab: Lab, name: str, scenario: Callable[[], Result], io: Output, command: str = "run") -> Result:
    """Run one scenario in the lab's turn; raise naming any service that stopped or restarted meanwhile.

    The turn: another run on the same lab waits (see labctl.turn), so the
    capture and key log hold this run's connections only. Checked after a
    pass too: a verdict computed while the server restarted is about a lab
    that changed under it.
    """
    # Another run waiting for the turn sees what holds it: `labctl run tls`, `labctl report (running tls)`.
    with turn.taken(lab, f"run {name}" if command == "run" else f"{command} (running {name})", io.progress):
        before = datetime.datetime.now(datetime.timezone.utc)
        try:
            result = scenario()
        except LabError:
            lab.check_running(before)    # a service that died or restarted is the better explanation
            raise
        lab.check_running(before)
    return result


def cmd_run(args: argparse.Namespace, io: Output) -> int:
    from . import scenarios

    many = args.scenario == "all"
    chosen = scenarios.all_scenarios() if many else [scenarios.load(args.scenario)]
    _text("--case", args.case or [])
    _text("--client-cmd", [args.client_cmd] if args.client_cmd is not None else [])
    options = scenarios.Options(tuple(args.case or ()), args.client_cmd)
    if many and options.given():
        raise UsageError(f"{options.given()[0]} belongs to `labctl run {scenarios.readers(options.given()[0])}`, "
                         "not to `run all`")
    for scenario in chosen:
        scenarios.check(scenario, options)           # an unknown case or a bad command fails before anything runs
    if args.keylog is not None and not many and not chosen[0].keylog:
        makers = [s.name for s in scenarios.all_scenarios() if s.keylog]
        raise UsageError(f"--keylog: `run {chosen[0].name}` makes no key log (its client keeps none); "
                         f"the scenarios that do: {', '.join(makers)}")
    names = [s.name for s in chosen]
    pcap_format = _pcap_format(args, many)
    pcap_to = _output_path(args.pcap, many, "pcap", names, pcap_format)
    keylog_to = _output_path(args.keylog, many, "keylog", names)
    if pcap_to is not None and keylog_to is not None and not many and pcap_to.resolve() == keylog_to.resolve():
        raise UsageError(f"--pcap and --keylog both name {pcap_to}: give two files")
    lab = _lab(args)
    lab.require_running()               # a clear error now if the lab is not up, naming why
    results = []
    for scenario in chosen:
        io.progress(f"running {scenario.name}: {scenario.title}")
        result = _checked(lab, scenario.name, lambda: scenario.run(lab, options), io)
        results.append(result)
        if pcap_to:
            dest = pcap_to / f"{scenario.name}.{pcap_format}" if many else pcap_to
            saved = capture.save_capture(result.pcap, dest, result.keylog, pcap_format)
            io.progress(render.dotted("capture saved to", saved.note(f"`run {scenario.name}` keeps no key log")))
        if keylog_to and result.keylog:
            dest = keylog_to / f"{scenario.name}.keylog" if many else keylog_to
            capture.save(result.keylog.encode(), dest)
            io.progress(render.dotted("key log saved to", str(dest)))
        if not args.json and not many:
            io.result(result.text())
    if args.json:
        if many:
            doc = {"schema": "tlslab.runs/1", "passed": all(r.passed for r in results),
                   "results": [r.to_dict() for r in results]}
        else:
            doc = results[0].to_dict()
        io.result(json.dumps(doc, indent=2))
    elif many:
        io.result(render.summary_text(results))
    return ExitStatus.OK if all(r.passed for r in results) else ExitStatus.ERROR


def cmd_report(args: argparse.Namespace, io: Output) -> int:
    from . import report, scenarios

    names = [n for n in args.scenario if n != "all"] or list(scenarios.NAMES)
    chosen = [scenarios.load(name) for name in dict.fromkeys(names)]   # an unknown name fails first
    out_dir = report.check_out_dir(args.out, report.report_files(s.name for s in chosen))  # so does an unwritable folder
    lab = _lab(args)
    lab.require_running()
    results = []
    for scenario in chosen:
        io.progress(f"running {scenario.name}: {scenario.title}")
        results.append(_checked(lab, scenario.name, lambda: scenario.run(lab, scenarios.Options()), io, "report"))
    index = report.write_report(results, out_dir, owned=report.report_files(scenarios.NAMES))
    io.result(f"report written to {index} (index.json, captures and key logs beside it)")
    return ExitStatus.OK if all(r.passed for r in results) else ExitStatus.ERROR


# -- checks on arguments, before anything reaches the engine ---------------------

USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}|\d{1,10}(:\d{1,10})?")
CAPTURE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")     # as wirectl's


def _shown(value: str) -> str:
    """A value as an error line shows it: quoted, escaped, cut at 60 characters."""
    return repr(value[:60] + ("…" if len(value) > 60 else ""))


def _text(what: str, values: list[str]) -> None:
    """Values that go into a container must be text: no bytes that are not UTF-8, no NUL."""
    for value in values:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"{what} {_shown(value)} is not UTF-8 text") from None
        if "\0" in value:
            raise UsageError(f"{what} {_shown(value)} holds a NUL byte")


# -- parser --------------------------------------------------------------------

def add_common(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """Options accepted before or after the command (`labctl -q up` = `labctl up -q`)."""
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--project", "-p", default=default(os.environ.get("LAB_PROJECT") or DEFAULT_PROJECT),
                        help="lab name (compose project); labs with different names run side by side "
                             "(default: $LAB_PROJECT or tlslab)")
    parser.add_argument("--traceback", action="store_true", default=default(False),
                        help="show the Python traceback behind an error")
    parser.add_argument("--quiet", "-q", action="store_true", default=default(False),
                        help="no progress lines on stderr")
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                        default=default(os.environ.get("LAB_TIMEOUT") or DEFAULT_TIMEOUT),
                        help="how long any one step may take: a client exchange, a wire command, the "
                             "services' health, a verify --client-cmd (default: $LAB_TIMEOUT or "
                             f"{DEFAULT_TIMEOUT:g}); a loaded machine needs more, never gives a false verdict")


def _seconds(text: str) -> float:
    """--timeout's type: the same check as Lab's, as argparse's one-line error."""
    try:
        return check_timeout(text, "")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(f"{str(exc).strip()} (the same setting as LAB_TIMEOUT)") from None


def _lines(text: str) -> int:
    """--tail's type: a count of lines, 0 to a million."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of lines") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 to 1000000 lines")
    return value


class Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line like every other labctl error (exit 2)."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {text} (`{self.prog} --help` explains)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="labctl", description="Control the TLS wire lab: see what TLS protects and what it leaks.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    add_common(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, func: Callable[[argparse.Namespace, Output], int], help: str,
            json_flag: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        add_common(p, defaults=False)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print a JSON document instead of text")
        return p

    p = add("up", cmd_up, "certificates, images, containers and health checks: the whole lab, "
                          "idempotently (a second `up` changes nothing)", json_flag=True)
    p.add_argument("--base-source", choices=images.SOURCES,
                   help="where the base image comes from: auto tries a registry, then builds "
                        "locally from Debian packages (default: $LAB_BASE_SOURCE or auto)")
    p.add_argument("--pull-from", metavar="REF",
                   help="the image the pull path starts from, e.g. your class registry's "
                        "registry.example:5000/debian:bookworm-slim (default: $LAB_PULL_FROM or "
                        f"{images.PULL_BASE}); only read when the base image has to be made")

    p = add("down", cmd_down, "remove the lab's containers and network (a no-op when it is not up)")
    p.add_argument("--volumes", "-v", action="store_true",
                   help="also delete the lab's volumes: the captures and the certificate volumes")

    add("status", cmd_status, "the engine labctl talks to, then services, addresses, roles and health; "
                              "exit 0 only when all are healthy", json_flag=True)

    p = add("logs", cmd_logs, "show the services' logs (the server logs requests, dns logs queries)")
    p.add_argument("service", nargs="?", help=f"one of: {', '.join(SERVICES)} (default: all)")
    p.add_argument("--tail", type=_lines, default=100, help="lines per service (default 100)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")

    p = add("shell", cmd_shell, "open a shell (or run a command) inside a service's container")
    p.add_argument("service", help=f"one of: {', '.join(SERVICES)}")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    p.add_argument("--user", "-u", help="user to run as (default: root; the client runs as 'lab')")

    p = add("certs", cmd_certs, "make the lab CA and the server's RSA and ECDSA certificates with trustme "
                                "(in certs/ of the clone, LAB_HOME or ~/.local/share/tlslab; LAB_CERTS_DIR "
                                "overrides) and say which container gets each file", json_flag=True)
    p.add_argument("--force", action="store_true",
                   help="make a new set even if one exists; a running lab gets it at once, after a run in "
                        "progress (its certificate volumes are refilled; the server, resolver and proxy "
                        "restarted); other labs at their next `up`")

    p = add("build", cmd_build, "build the base image (pulled, or made from Debian packages) and the "
                                "service images, without starting anything")
    p.add_argument("--base-source", choices=images.SOURCES, help="as for `up`")
    p.add_argument("--pull-from", metavar="REF", help="as for `up`")

    p = add("client", cmd_client, "run the lab's TLS client once in the client container and show what it "
                                  "got; arguments go to client.py", json_flag=True)
    p.add_argument("client_args", nargs=argparse.REMAINDER,
                   help="e.g. server.lab.test --secret hunter2 [--plain] [--insecure] [--max-version 1.2]")
    add("client-help", cmd_client_help, "show every option of the lab's client program")

    p = add("run", cmd_run, "run a scenario on the lab: capture, client, analysis, and the checks that "
                            "prove each claim on the captured bytes", json_flag=True)
    p.add_argument("scenario", help="a scenario name (see `labctl scenarios`) or 'all'")
    p.add_argument("--pcap", help="save the capture here (with 'all': a folder, one NAME.pcap each); a name "
                                  "ending in .pcapng writes a pcapng with the run's key log embedded, which "
                                  "Wireshark and tshark open decrypted with no options")
    p.add_argument("--pcap-format", choices=capture.FORMATS,
                   help="how --pcap writes: pcap, or pcapng with the key log embedded (default: by the file "
                        "name's suffix, else pcap; with 'all': NAME.pcapng each)")
    p.add_argument("--keylog", help="save the client's NSS key log here, so Wireshark opens the capture "
                                    "decrypted (with 'all': a folder)")
    p.add_argument("--case", action="append", metavar="CASE",
                   help="verify only: run this case (repeatable; default every case)")
    p.add_argument("--client-cmd", metavar="COMMAND",
                   help="verify only: also grade this command on each server-certificate case, e.g. "
                        "'curl -sS --cacert {ca} {url}'. It runs in the client container as one shell string "
                        "(sh -c) as user 'lab'; placeholders {host} {port} {url} {ca} {cert} {key} are filled in "
                        "shell-quoted; write a literal brace as {{ or }}; exit status 0 = connected; a command "
                        "still running after --timeout is killed and graded as a failure. The mutual-TLS and "
                        "protocol cases are not graded for it (the run says why)")
    p.add_argument("--client-timeout", type=_seconds, dest="timeout", default=argparse.SUPPRESS,
                   metavar="SECONDS", help="the same as --timeout (an older name)")

    p = add("analyze", cmd_analyze, "dissect any pcap (from the lab or elsewhere): flows, DNS, TLS handshakes, "
                                    "records, certificates in clear", json_flag=True)
    p.add_argument("pcap", help="a pcap or pcapng file: any link type tcpdump or Wireshark writes, IPv4 or IPv6; "
                                "lost segments and snaplen cuts are said, never filled in; QUIC, DTLS and SSLv2 "
                                "flows are named, not dissected. A pcapng that carries its key log (a Decryption "
                                "Secrets Block, e.g. from `labctl run tls --pcap X.pcapng`) is decrypted with no "
                                "--keylog. Over 64 MiB and with no key log, it is read in bounded memory: "
                                "application data is previewed (256 bytes a record)")
    p.add_argument("--keylog", metavar="KEYS",
                   help="an NSS key log (SSLKEYLOGFILE): decrypt every TLS connection it has keys for and show "
                        "the application data each way; lines it cannot use are skipped and listed, as Wireshark "
                        "does")

    p = add("stolen-key", cmd_stolen_key, "decrypt a recorded capture with a stolen server RSA key (no key log): "
                                          "works on RSA key exchange, not on ECDHE or TLS 1.3", json_flag=True)
    p.add_argument("pcap", help="a capture, e.g. from `labctl run forward-secrecy --pcap fs.pcap`")
    p.add_argument("--key", required=True, help="the server's private key (PEM): server/server-rsa.key in the lab's certificates "
                                                 "folder (`labctl certs` says where it is)")

    add("scenarios", cmd_scenarios, "list the scenarios and what each shows", json_flag=True)

    p = add("report", cmd_report, "run scenarios and write one self-contained HTML page (sequence diagrams, "
                                  "what leaks, verdicts) with each pcap and key log beside it")
    p.add_argument("scenario", nargs="*", help="scenario names (see `labctl scenarios`; default: all)")
    p.add_argument("--out", "-o", required=True, help="folder for index.html, index.json, NAME.pcap, NAME.keylog and "
                                                       "NAME.pcapng (the capture with its key log embedded)")

    p = add("capture", cmd_capture, "record packets on the wire: start NAME, stop NAME [--out FILE], "
                                    "get NAME --out FILE, list", json_flag=True)
    p.add_argument("action", choices=("start", "stop", "get", "list"), help="what to do")
    p.add_argument("name", nargs="?", help="capture name (letters, digits, '.', '_', '-')")
    p.add_argument("--out", "-o", help="copy the capture to this file on the host (mode 0600): a pcap, or a "
                                        "pcapng if the name ends in .pcapng")
    p.add_argument("--keylog", metavar="FILE",
                   help="stop/get: an NSS key log on the host to embed in the --out pcapng, so Wireshark opens "
                        "it decrypted with no options (e.g. from `labctl client ... --keylog`)")
    return parser


def main(argv: list[str] | None = None, io: Output | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command == "client":
        # The client's own options before HOST (`labctl client --browse www.lab.test`): argparse sets
        # them aside, in order, and its REMAINDER starts at HOST; together they are the client's line.
        args.client_args = [*unknown, *args.client_args]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    io = io or Output(quiet=args.quiet)
    if args.command == "capture":
        if args.action != "list" and not args.name:
            parser.error(f"capture {args.action} needs a NAME")
        if args.action == "get" and not args.out:
            parser.error("capture get needs --out FILE")
        if args.action in ("start", "list") and args.keylog is not None:
            parser.error(f"--keylog belongs to capture stop and get (with --out NAME.pcapng), "
                         f"not to capture {args.action}")
    try:
        return int(args.func(args, io))
    except LabError as exc:
        if args.traceback:
            raise
        print(f"labctl: error: {exc}", file=io.err)
        for line in exc.details:
            print(f"  {line}", file=io.err)
        return int(exc.status)
    except docker.errors.DockerException as exc:
        if args.traceback:
            raise
        print(f"labctl: error: Docker said: {str(exc).splitlines()[0][:300]}", file=io.err)
        return int(ExitStatus.ERROR)
    except Terminated:
        print("labctl: terminated", file=io.err)
        return int(ExitStatus.TERMINATED)
    except KeyboardInterrupt:
        print("labctl: interrupted", file=io.err)
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        raise                   # `labctl ... | head`: labctl.entry treats it as the reader leaving
    except requests.exceptions.ConnectionError as exc:
        if args.traceback:
            raise
        # The engine went away mid-command (stopped, restarted, network gone).
        print(f"labctl: error: the Docker engine stopped answering ({_first_text(exc)[:160]}) — "
              "`labctl status` says whether it is back", file=io.err)
        return int(ExitStatus.UNAVAILABLE)
    except Exception as exc:    # noqa: BLE001 — the last resort, as httpie's main() has
        if args.traceback:
            raise
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        print(f"labctl: error: unexpected {type(exc).__name__}{': ' + text if text else ''} "
              "(a bug in labctl: run again with --traceback and report what it prints)", file=io.err)
        return int(ExitStatus.ERROR)


def _first_text(exc: BaseException) -> str:
    """"Connection aborted." out of requests' ConnectionError(ProtocolError(('Connection aborted.', …)))."""
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if isinstance(item, str):
            return item
        if isinstance(item, (tuple, list)):
            todo[:0] = list(item)
        elif isinstance(item, BaseException):
            todo[:0] = list(item.args)
    return type(exc).__name__
