"""gateway/vm is product code off the run path: nothing else in gateway/ or
plugins/ imports it (so `hostclock run` never loads it), it imports only the
standard library and itself, and its guest scripts ship as package data."""

from __future__ import annotations

import ast
import importlib.resources
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names


def test_nothing_on_the_run_path_imports_gateway_vm():
    offenders = []
    for package in ("gateway", "plugins"):
        for path in (REPO / package).rglob("*.py"):
            if (REPO / "gateway" / "vm") in path.parents:
                continue
            if (REPO / "gateway" / "app" / "demo") in path.parents:
                # `hostclock demo` boots the guest; it is off the run path too (a serving gateway has
                # loaded only the demo's argument definitions: tests/gateway/app/demo/)
                continue
            if any(n == "gateway.vm" or n.startswith("gateway.vm.") for n in _imported(path)):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_gateway_vm_imports_only_the_standard_library():
    for path in (REPO / "gateway" / "vm").glob("*.py"):
        for name in _imported(path):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top == "__future__", f"{path.name}: {name}"


def test_guest_scripts_are_package_data():
    guest = importlib.resources.files("gateway.vm") / "guest"
    assert guest.joinpath("init").read_text().startswith("#!/bin/sh")
    assert guest.joinpath("udhcpc.sh").read_text().startswith("#!/bin/sh")
    assert '"gateway.vm" = ["guest/*"]' in (REPO / "pyproject.toml").read_text()
