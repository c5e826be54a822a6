"""hostclock's configuration: the gateway's, then each plugin's table; defaults, TOML, CLI overrides.

`Config` is immutable. Its `gateway` is the core's `GatewayConfig` (vpnkit's
defaults), its `guest_clock` the core's `GuestClockConfig` (watching each
guest's clock: off by default); every other TOML table belongs to a plugin and is validated by that
plugin's settings class (`gateway.core.plugin.Plugin.settings`), so a third-party
plugin's ``[myplugin]`` table works like ``[ntp]`` and ``[dhcp]``. A plugin's
settings are read as an attribute: ``config.ntp.upstream``, ``config.dhcp.lease_time``.
An unknown table or key is a `ConfigError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.app.plugin_registry import available_plugins, load_plugin
from gateway.core.config import ConfigError, GatewayConfig, GuestClockConfig, parse_host_port
from gateway.core.plugin import Plugin

__all__ = ["Config", "ConfigError", "GatewayConfig", "GuestClockConfig", "parse_host_port"]

_GATEWAY_TABLE = "gateway"
_GUEST_CLOCK_TABLE = "guest_clock"
#: the core's own tables, and their settings classes
_CORE_TABLES = {_GATEWAY_TABLE: GatewayConfig, _GUEST_CLOCK_TABLE: GuestClockConfig}


@dataclass(frozen=True)
class Config:
    """The gateway's configuration and, by plugin name, each plugin's settings (its defaults if absent)."""

    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    guest_clock: GuestClockConfig = field(default_factory=GuestClockConfig)
    #: plugin name -> that plugin's settings object; a plugin not named here has its defaults
    plugins: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        settings = self.plugins.get(name)
        if settings is not None:
            return settings
        plugin = load_plugin(name)
        if plugin is None or plugin.settings is None:
            raise AttributeError(f"Config has no table {name!r}: no installed plugin of that name has settings")
        return plugin.default_settings()

    def settings_for(self, plugin: Plugin) -> Any:
        """The settings `plugin` is built with: the configured ones or its defaults."""
        settings = self.plugins.get(plugin.name)
        return settings if settings is not None else plugin.default_settings()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "configuration") -> "Config":
        """Build from nested tables ({"gateway": {...}, "ntp": {...}, ...}); unknown tables and keys are errors."""
        plugins = available_plugins()
        owners = {name: plugin for name, plugin in plugins.items() if plugin.settings is not None}
        legacy = {old: plugin for plugin in owners.values() for old in plugin.legacy_tables}
        core_values: dict[str, dict[str, Any]] = {name: {} for name in _CORE_TABLES}
        tables: dict[str, dict[str, Any]] = {}
        # legacy tables first, so that the plugin's own table wins where both set a key
        for name in sorted(data, key=lambda n: n not in legacy):
            values = data[name]
            if not isinstance(values, Mapping):
                raise ConfigError(f"{source}: [{name}] must be a table")
            if name in _CORE_TABLES:
                _check_keys(source, name, values, _CORE_TABLES[name])
                core_values[name].update(values)
                continue
            plugin = owners.get(name) or legacy.get(name) or load_plugin(name)
            if plugin is None or plugin.settings is None:
                known = ", ".join([*_CORE_TABLES, *sorted(owners)])
                raise ConfigError(f"{source}: unknown table [{name}] (known: {known}; a plugin's table is its name)")
            _check_keys(source, name, values, plugin.settings)
            tables.setdefault(plugin.name, {}).update(values)
        core = {name: _build(source, name, settings, core_values[name]) for name, settings in _CORE_TABLES.items()}
        settings = {name: _build(source, name, load_plugin(name).settings, values) for name, values in tables.items()}
        return cls(**core, plugins=settings)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
        return cls.from_mapping(data, source=str(path))

    def replace(self, **tables: Mapping[str, Any]) -> "Config":
        """A copy with some keys of some tables changed: ``replace(ntp={"upstream": ...}, gateway={...})``."""
        core = {name: getattr(self, name) for name in _CORE_TABLES}
        plugins = dict(self.plugins)
        for name, values in tables.items():
            if not values:
                continue
            if name in _CORE_TABLES:
                core[name] = dataclasses.replace(core[name], **values)
                continue
            current = getattr(self, name)  # AttributeError for a table no plugin owns
            plugins[name] = dataclasses.replace(current, **values)
        return Config(**core, plugins=plugins)


def _check_keys(source: str, table: str, values: Mapping[str, Any], settings: type) -> None:
    known = {f.name for f in dataclasses.fields(settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} in [{table}] (known: {', '.join(sorted(known))})")


def _build(source: str, table: str, settings: type, values: Mapping[str, Any]) -> Any:
    try:
        return settings(**values)
    except TypeError as e:
        raise ConfigError(f"{source}: [{table}]: {e}") from None
