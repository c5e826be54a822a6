"""Finding plugins: the entry-point group ``hostclock.plugins``, and nothing else.

A plugin is an installed distribution's entry point in that group whose object
is a `gateway.core.plugin.Plugin`::

    # in the plugin's pyproject.toml
    [project.entry-points."hostclock.plugins"]
    echo = "my_package.echo:PLUGIN"

hostclock's own plugins (ntp, dhcp) are registered the same way, by
hostclock's own distribution; they are the built-in ones and run unless their
settings turn them off. Third-party plugins run only when named
(`hostclock run --plugin NAME`), so installing a package never silently adds a
service to every gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from gateway.core.config import ConfigError
from gateway.core.plugin import Plugin

__all__ = ["ENTRY_POINT_GROUP", "FOUND_IN", "InstalledPlugin", "available_plugins", "installed_plugins", "load_plugin",
           "enabled_plugins"]

ENTRY_POINT_GROUP = "hostclock.plugins"
#: the distribution whose plugins are built in
FOUND_IN = "hostclock"


@dataclass(frozen=True)
class InstalledPlugin:
    """An entry point in ``hostclock.plugins``, before and after loading."""

    name: str
    target: str  # "module:attribute"
    distribution: str

    @property
    def builtin(self) -> bool:
        return self.distribution == FOUND_IN

    def load(self) -> Plugin:
        try:
            plugin = EntryPoint(self.name, self.target, ENTRY_POINT_GROUP).load()
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"plugin {self.name!r} ({self.target}) cannot be loaded: {e}") from None
        if not isinstance(plugin, Plugin):
            raise ConfigError(f"plugin {self.name!r} ({self.target}) is {type(plugin).__name__}, not a "
                              "gateway.core.plugin.Plugin")
        if plugin.name != self.name:
            raise ConfigError(f"plugin {self.name!r} ({self.target}) calls itself {plugin.name!r}; "
                              "the entry point's name and Plugin.name must agree")
        return plugin


def installed_plugins() -> dict[str, InstalledPlugin]:
    """Every entry point in the group, by name (built-in ones first)."""
    found: dict[str, InstalledPlugin] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry.dist.name if entry.dist is not None else ""
        if entry.name not in found or distribution == FOUND_IN:
            found[entry.name] = InstalledPlugin(entry.name, entry.value, distribution)
    if not any(p.builtin for p in found.values()):
        raise ConfigError("hostclock's own plugins (ntp, dhcp) are not registered: install hostclock "
                          "(pip install -e .) so that its entry points exist")
    return dict(sorted(found.items(), key=lambda kv: (not kv[1].builtin, kv[0])))


@cache
def available_plugins() -> dict[str, Plugin]:
    """The built-in plugins, loaded (they are always needed); third-party ones load when named."""
    return {name: entry.load() for name, entry in installed_plugins().items() if entry.builtin}


@cache
def load_plugin(name: str) -> Plugin | None:
    """The installed plugin `name`, loaded (a third-party one only now); None if none is installed."""
    builtin = available_plugins().get(name)
    if builtin is not None:
        return builtin
    entry = installed_plugins().get(name)
    return entry.load() if entry is not None else None


def enabled_plugins(named: tuple[str, ...] | list[str] = ()) -> list[Plugin]:
    """The built-in plugins and the named third-party ones, in that order."""
    plugins = list(available_plugins().values())
    installed = installed_plugins()
    for name in named:
        entry = installed.get(name)
        if entry is None:
            known = ", ".join(installed) or "none"
            raise ConfigError(f"unknown plugin {name!r}: installed plugins are {known} "
                              f"(a plugin is an entry point in the group {ENTRY_POINT_GROUP!r})")
        if not entry.builtin and all(p.name != name for p in plugins):
            plugins.append(load_plugin(name))
    return plugins
