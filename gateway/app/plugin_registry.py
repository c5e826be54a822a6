"""Plugins: services on the gateway, built in or installed by third parties.

A plugin is an entry point in the group ``hostclock.plugins``. Its object is a
factory that builds the service from hostclock's configuration::

    # in the plugin's pyproject.toml
    [project.entry-points."hostclock.plugins"]
    echo = "my_package.echo:create"

    # my_package/echo.py
    def create(config: gateway.Config) -> gateway.UdpService | None: ...

The factory returns a sans-IO `UdpService` (see `gateway.core.service`), or None
when the configuration disables it. hostclock's own DHCP service is registered
the same way. Built-in plugins run unless their configuration turns them off;
third-party plugins run only when named (`hostclock run --plugin NAME`), so
installing a package never silently adds a service to every gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from gateway.app.config import Config, ConfigError
from gateway.core.service import UdpService

__all__ = ["ENTRY_POINT_GROUP", "BUILTIN_PLUGINS", "PluginFactory", "Plugin", "available_plugins",
           "create_services"]

ENTRY_POINT_GROUP = "hostclock.plugins"

PluginFactory = Callable[[Config], "UdpService | None"]

#: hostclock's own plugins, by name, as "module:factory" (also declared as entry points in pyproject.toml,
#: and found here even when the package runs from a checkout without being installed)
BUILTIN_PLUGINS = {"dhcp": "plugins.dhcp.service:create"}


@dataclass(frozen=True)
class Plugin:
    name: str
    target: str  # "module:attribute"
    builtin: bool

    def load(self) -> PluginFactory:
        try:
            factory = EntryPoint(self.name, self.target, ENTRY_POINT_GROUP).load()
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"plugin {self.name!r} ({self.target}) cannot be loaded: {e}") from None
        if not callable(factory):
            raise ConfigError(f"plugin {self.name!r} ({self.target}) is not a factory: expected create(config)")
        return factory


def available_plugins() -> dict[str, Plugin]:
    """Every plugin hostclock can find: the built-in ones and those installed as entry points."""
    found = {name: Plugin(name, target, builtin=True) for name, target in BUILTIN_PLUGINS.items()}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in found:
            found[entry.name] = Plugin(entry.name, entry.value, builtin=False)
    return found


def create_services(config: Config, enabled: Iterable[str] = ()) -> list[UdpService]:
    """The services to bind: every built-in plugin its config enables, plus the named third-party ones."""
    plugins = available_plugins()
    names = [name for name, plugin in plugins.items() if plugin.builtin]
    for name in enabled:
        if name not in plugins:
            known = ", ".join(sorted(plugins)) or "none"
            raise ConfigError(f"unknown plugin {name!r}: installed plugins are {known} "
                              f"(a plugin is an entry point in the group {ENTRY_POINT_GROUP!r})")
        if name not in names:
            names.append(name)
    services = []
    for name in names:
        service = plugins[name].load()(config)
        if service is None:
            continue
        if not isinstance(service, UdpService):
            raise ConfigError(f"plugin {name!r} built {service!r}, which is not a UdpService "
                              "(needs port, accepts_broadcast, drops, handle_datagram)")
        services.append(service)
    return services
