"""The layout keeps its promises: one shape for every scenario, no scenario names outside the
scenarios, a pure TLS package, and no import cycle. Read from the source itself (ast), not mocked."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import labctl
from labctl import scenarios
from labctl.scenarios import NAMES, Options
from labctl.verdict import Result

PACKAGE = Path(labctl.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    """labctl's modules by dotted name."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _runtime_imports(name: str, path: Path) -> set[str]:
    """The labctl modules NAME imports when it is imported (module level, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.If, ast.Try, ast.With)):
                visit(getattr(node, "body", []))
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("labctl"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("labctl"):
                    continue
                found.add(target)
                for alias in node.names:                   # `from . import runner` imports labctl.runner
                    found.add(f"{target}.{alias.name}")

    visit(tree.body)
    return found


def test_no_import_cycle():
    modules = _modules()
    graph = {name: {m for m in _runtime_imports(name, path) if m in modules and m != name}
             for name, path in modules.items()}
    # A package imports its __init__ first; that is not a cycle of ours.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                walk(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            walk(node)


def test_the_tls_package_imports_nothing_of_the_lab_and_no_docker():
    modules = _modules()
    for name, path in modules.items():
        if not name.startswith("labctl.tls"):
            continue
        source = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+docker\b", source, re.M), name
        outside = {m for m in _runtime_imports(name, path) if m in modules
                   and not m.startswith("labctl.tls") and m not in ("labctl.errors", "labctl.files")}
        assert not outside, f"{name} imports {outside}"


@pytest.mark.parametrize("name", NAMES)
def test_every_scenario_has_the_one_shape(name):
    import importlib

    module = importlib.import_module(f"labctl.scenarios.{name.replace('-', '_')}")
    for attribute, kind in (("NAME", str), ("TITLE", str), ("CHECKS", tuple)):
        assert isinstance(getattr(module, attribute), kind), (name, attribute)
    assert isinstance(getattr(module, "OPTIONS", ()), tuple)                     # where it reads any
    summary_line = (module.__doc__ or "").split("\n", 1)[0]
    assert summary_line.startswith(f"{name}: ") and summary_line.endswith("."), summary_line
    scenario = scenarios.load(name)
    assert scenario.name == name and scenario.checks == module.CHECKS
    assert scenario.summary and scenario.summary in summary_line and len(scenario.summary) <= 110
    assert scenario.checks and all(isinstance(c, str) and c for c in scenario.checks)
    assert len(set(scenario.checks)) == len(scenario.checks), "a check declared twice"
    params = list(inspect.signature(module.run).parameters)
    assert params[:2] == ["lab", "options"], params
    assert inspect.signature(module.run).return_annotation != inspect.Signature.empty
    scenario.check(Options())                           # no options is always fine
    doc = module.__doc__ or ""
    assert "What it demonstrates" in doc and "What to look for" in doc, name


def test_an_option_a_scenario_does_not_read_is_refused_and_names_its_reader():
    from labctl.errors import UsageError

    with pytest.raises(UsageError, match=r"--case belongs to `labctl run verify`, not to `run tls`"):
        scenarios.check(scenarios.load("tls"), Options(cases=("expired",)))
    scenarios.check(scenarios.load("verify"), Options(cases=("expired",)))


def test_every_result_type_brings_its_own_views():
    """Each Result subclass a scenario returns overrides text() and html(): no view special-cases a name."""
    from labctl.attack import AttackResult
    from labctl.exchange import ExchangeResult
    from labctl.scenarios.verify import VerifyResult

    for cls in (ExchangeResult, AttackResult, VerifyResult):
        assert issubclass(cls, Result)
        assert cls.text is not Result.text and cls.html is not Result.html, cls


@pytest.mark.parametrize("module", ["cli.py", "render.py", "report.py", "verdict.py", "sequence.py", "exchange.py",
                                    "attack.py", "runner.py"])
def test_the_views_hold_no_scenario_names(module):
    source = (PACKAGE / module).read_text()
    for name in NAMES:
        # A dict key that happens to be spelled like one (client.py's report["tls"]) is not a scenario.
        assert not re.search(rf"""(?<!get\()(?<!\[)["']{re.escape(name)}["']""", source), \
            f"{module} names scenario {name!r}"
    assert "hasattr(" not in source, module
    assert not re.search(r"\.name\s*==", source), module
    assert "SimpleNamespace" not in source, module


def test_scenarios_import_nothing_from_each_other():
    for name in NAMES:
        path = PACKAGE / "scenarios" / f"{name.replace('-', '_')}.py"
        imports = _runtime_imports(f"labctl.scenarios.{path.stem}", path)
        others = {m for m in imports if m.startswith("labctl.scenarios.") and m != "labctl.scenarios.Options"
                  and m.rsplit(".", 1)[1] in {n.replace("-", "_") for n in NAMES}}
        assert not others, f"{name} imports {others}"


def test_one_table_of_tls_facts():
    """Protocol tables (versions, handshake types, alerts) are defined once, in labctl.tls.constants."""
    tables = re.compile(r"""^\s*[A-Z_]+\s*(?::[^=]+)?=\s*\{\s*(0x0301|0x0303|1:\s*["']ClientHello|10:\s*["']unexpected_message|"""
                        r"""4:\s*["']NewSessionTicket|8:\s*["']EncryptedExtensions)""", re.M)
    for name, path in _modules().items():
        if name == "labctl.tls.constants":
            continue
        assert not tables.search(path.read_text()), f"{name} has its own copy of a TLS table"
