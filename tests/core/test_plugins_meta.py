"""Meta-tests in the style of datasette's: every hook is tested and documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from netdiffusion import hookspecs
from netdiffusion.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins.md"
TESTS = Path(__file__).resolve().parent


def _hookspecs() -> dict[str, inspect.Signature]:
    pm = PluginManager()
    names = [name for name in dir(pm.hook) if name.startswith("register_")]
    return {name: inspect.signature(getattr(hookspecs, name)) for name in names}


HOOKS = _hookspecs()


def test_there_are_hooks() -> None:
    assert set(HOOKS) >= {"register_emitters", "register_commands"}
    assert all(name.startswith("register_") for name in HOOKS)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_has_a_test(hook: str) -> None:
    sources = "".join(p.read_text() for p in sorted(TESTS.glob("test_plugins*.py")))
    assert re.search(rf"^def test_hook_{hook}\(", sources, re.M), f"no test_hook_{hook}"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_is_documented_with_signature(hook: str) -> None:
    documented = dict(re.findall(r"^### (register_\w+)\((.*)\)\s*$", DOCS.read_text(), re.M))
    assert hook in documented, f"{hook} has no '### {hook}(...)' section in docs/plugins.md"
    params = ", ".join(HOOKS[hook].parameters)
    assert documented[hook] == params


def test_docs_document_no_unknown_hook() -> None:
    documented = re.findall(r"^### (register_\w+)\(", DOCS.read_text(), re.M)
    assert sorted(documented) == sorted(HOOKS)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hookspec_has_docstring(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc and doc.startswith("Register ")
