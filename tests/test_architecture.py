"""The house's rules, read from the code: arrows point one way (docs/architecture.md).

* nothing under gateway/ imports plugins/, nor names a plugin module in a string:
  plugins are found only through the entry-point group ``hostclock.plugins``;
* the sans-IO core (gateway/core/) imports only the standard library and itself;
* the import graph of gateway/ and plugins/ has no cycle (imports inside functions
  count too; only ``if TYPE_CHECKING:`` blocks do not);
* ``import gateway`` and ``gateway.build_stack(config)`` work in a process where
  trio, scapy and every edge module cannot be imported.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "plugins")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module `tree` imports (absolute names), outside `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)  # `from pkg import module`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _project_modules() -> dict[str, tuple[Path, ast.AST]]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            modules[_module_name(path)] = (path, ast.parse(path.read_text(), str(path)))
    return modules


MODULES = _project_modules()


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, (path, tree) in MODULES.items():
        imported = _imports(tree, name, path.name == "__init__.py")
        graph[name] = {m for m in imported if m in MODULES and m != name}
    return graph


def test_nothing_under_gateway_imports_plugins_or_names_a_plugin_module():
    offenders = []
    for name, (path, tree) in MODULES.items():
        if not name.startswith("gateway"):
            continue
        for imported in _imports(tree, name, path.name == "__init__.py"):
            if imported == "plugins" or imported.startswith("plugins."):
                offenders.append(f"{path.relative_to(REPO)} imports {imported}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("plugins."):
                offenders.append(f"{path.relative_to(REPO)} names {node.value!r}")
    assert offenders == []


def test_the_core_imports_only_the_standard_library_and_itself():
    offenders = []
    for name, (path, tree) in MODULES.items():
        if not name.startswith("gateway.core"):
            continue
        for imported in _imports(tree, name, path.name == "__init__.py"):
            top = imported.split(".")[0]
            if top == "gateway":
                if not (imported == "gateway.core" or imported.startswith("gateway.core.")):
                    offenders.append(f"{path.relative_to(REPO)} imports {imported}")
            elif top not in sys.stdlib_module_names and top != "__future__":
                offenders.append(f"{path.relative_to(REPO)} imports {imported}")
    assert offenders == []


def test_plugins_import_only_the_core_of_the_gateway():
    """A plugin builds on the interface (gateway.core), never on the runtime that hosts it."""
    offenders = []
    for name, (path, tree) in MODULES.items():
        if not name.startswith("plugins"):
            continue
        for imported in _imports(tree, name, path.name == "__init__.py"):
            if imported.startswith("gateway") and not imported.startswith("gateway.core"):
                offenders.append(f"{path.relative_to(REPO)} imports {imported}")
    assert offenders == []


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                cycles.append(path[path.index(successor):] + [successor] if successor in path else [node, successor])
            elif successor not in state:
                visit(successor, path + [successor])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_checker_sees_a_cycle_and_a_plugin_import(tmp_path):
    """The rules above can fail: a module importing plugins is an offender, a two-module loop a cycle."""
    tree = ast.parse("from plugins.ntp import packet\nif TYPE_CHECKING:\n    import plugins.dhcp\n")
    assert _imports(tree, "gateway.core.x", False) == {"plugins.ntp", "plugins.ntp.packet"}
    relative = ast.parse("from .flows import Flow\nfrom . import udp\n")
    assert _imports(relative, "gateway.core.stack", False) >= {"gateway.core.flows", "gateway.core.udp"}


BLOCKED_IMPORTS = textwrap.dedent("""
    import importlib.abc, sys

    BLOCKED = ("trio", "scapy", "gateway.edges", "gateway.replay", "gateway.app.runtime", "gateway.app.cli",
               "plugins.ntp.server")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Block())
    for name in list(sys.modules):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            del sys.modules[name]
""")


def test_import_gateway_and_build_a_stack_without_trio_scapy_or_any_edge():
    program = BLOCKED_IMPORTS + textwrap.dedent("""
        import gateway
        from gateway.core import arp, ethernet, ipv4, udp

        stack = gateway.build_stack(gateway.Config())
        gw_mac, guest_mac = bytes.fromhex("f616 36bc f9c6"), bytes.fromhex("0200 0000 0003")
        gw_ip, guest_ip = bytes([192, 168, 65, 1]), bytes([192, 168, 65, 3])
        arp_request = (ethernet.build_header(b"\\xff" * 6, guest_mac, ethernet.ETHERTYPE_ARP)
                       + arp.build_packet(arp.OP_REQUEST, guest_mac, guest_ip, bytes(6), gw_ip))
        (reply,) = stack.receive_frame(arp_request, now=0.0)
        assert reply[6:12] == gw_mac and reply[12:14] == b"\\x08\\x06" and reply[20:22] == b"\\x00\\x02"
        ntp = bytes([0x23]) + bytes(47)
        datagram = udp.build_datagram(guest_ip, gw_ip, 40000, 123, ntp)
        frame = (ethernet.build_header(gw_mac, guest_mac, ethernet.ETHERTYPE_IPV4)
                 + ipv4.build_header(guest_ip, gw_ip, ipv4.PROTO_UDP, len(datagram)) + datagram)
        (forward,) = stack.receive_frame(frame, now=0.0)
        assert isinstance(forward, gateway.Forward) and forward.port == 123 and forward.payload == ntp
        loaded = [m for m in sys.modules if m.split(".")[0] in ("trio", "scapy") or m.startswith("gateway.edges")]
        assert loaded == [], loaded
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_blocking_itself_works():
    """The block above really stops an edge import (so the test above could fail)."""
    program = BLOCKED_IMPORTS + "import gateway\ngateway.make_transport\n"
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "blocked for this test" in done.stderr
