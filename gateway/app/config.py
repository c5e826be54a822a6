"""hostclock's configuration: the gateway's, then each plugin's table; defaults, TOML, CLI overrides.

`Config` is immutable. Its `gateway` is the core's `GatewayConfig` (vpnkit's
defaults) and its `guest_clock` the core's `GuestClockConfig` (watching each guest's clock: off
by default), its `access` the app's `AccessConfig` (socket files, user, max_guests); every
other TOML table belongs to a plugin and is validated by that
plugin's settings class (`gateway.core.plugin.Plugin.settings`), so a third-party
plugin's ``[myplugin]`` table works like ``[ntp]`` and ``[dhcp]``. A plugin's
settings are read as an attribute: ``config.ntp.upstream``, ``config.dhcp.lease_time``.
An unknown table or key is a `ConfigError` naming the file and the key, and so is a
value of the wrong kind (an array where a string belongs: each value is checked
against its field's annotation before the settings class sees it).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.app.access import AccessConfig
from gateway.app.plugin_registry import available_plugins, load_plugin
from gateway.core.config import ConfigError, GatewayConfig, GuestClockConfig, parse_host_port
from gateway.core.plugin import Plugin

__all__ = ["AccessConfig", "Config", "ConfigError", "GatewayConfig", "GuestClockConfig", "parse_host_port"]

_GATEWAY_TABLE = "gateway"
_GUEST_CLOCK_TABLE = "guest_clock"
#: the core's own tables, and their settings classes
_CORE_TABLES = {_GATEWAY_TABLE: GatewayConfig, _GUEST_CLOCK_TABLE: GuestClockConfig}
_ACCESS_TABLE = "access"
#: the tables hostclock itself owns: the core's, and the app's [access] (who can get in)
_OWN_TABLES = {**_CORE_TABLES, _ACCESS_TABLE: AccessConfig}


@dataclass(frozen=True)
class Config:
    """The gateway's configuration and, by plugin name, each plugin's settings (its defaults if absent)."""

    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    guest_clock: GuestClockConfig = field(default_factory=GuestClockConfig)
    #: who can get in: the socket files' mode and group, the user to run as, max_guests
    access: AccessConfig = field(default_factory=AccessConfig)
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
        core_values: dict[str, dict[str, Any]] = {name: {} for name in _OWN_TABLES}
        tables: dict[str, dict[str, Any]] = {}
        # legacy tables first, so that the plugin's own table wins where both set a key
        for name in sorted(data, key=lambda n: n not in legacy):
            values = data[name]
            if not isinstance(values, Mapping):
                raise ConfigError(f"{source}: [{name}] must be a table")
            if name in _OWN_TABLES:
                _check_keys(source, name, values, _OWN_TABLES[name])
                core_values[name].update(values)
                continue
            plugin = owners.get(name) or legacy.get(name) or load_plugin(name)
            if plugin is None or plugin.settings is None:
                known = ", ".join([*_CORE_TABLES, *sorted(owners), _ACCESS_TABLE])
                raise ConfigError(f"{source}: unknown table [{name}] (known: {known}; a plugin's table is its name)")
            _check_keys(source, name, values, plugin.settings)
            tables.setdefault(plugin.name, {}).update(values)
        core = {name: _build(source, name, settings, core_values[name]) for name, settings in _OWN_TABLES.items()}
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
        except UnicodeDecodeError as e:  # tomllib decodes the whole file as UTF-8 first (TOML 1.0: "must be UTF-8")
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {e.start}): TOML files must be UTF-8") from None
        return cls.from_mapping(data, source=str(path))

    def replace(self, **tables: Mapping[str, Any]) -> "Config":
        """A copy with some keys of some tables changed: ``replace(ntp={"upstream": ...}, gateway={...})``."""
        core = {name: getattr(self, name) for name in _OWN_TABLES}
        plugins = dict(self.plugins)
        for name, values in tables.items():
            if not values:
                continue
            if name in _OWN_TABLES:
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
    for key, value in values.items():
        _check_toml_type(settings, table, key, value, source)
    try:
        return settings(**values)
    except TypeError as e:
        raise ConfigError(f"{source}: [{table}]: {e}") from None


_TOML_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _check_toml_type(settings: type, table: str, key: str, value: Any, source: str) -> None:
    """ConfigError unless `value` has the kind of the field's annotation: a TOML file can hold an
    array or a table where a string belongs, and the settings' own checks assume the right kind
    (found by fuzzing: `refid = ["..."]` escaped as an AttributeError)."""
    try:
        hint = typing.get_type_hints(settings).get(key)
    except Exception:  # a plugin's annotations this check cannot resolve: its own checks decide
        return
    allowed: list[Any] = []
    for option in (typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)):
        if typing.get_origin(option) is typing.Literal:
            allowed.append(str)
        elif typing.get_origin(option) is tuple:
            allowed.append(list)
        elif option in _TOML_KINDS:
            allowed.append(option)
    if not allowed:
        return  # a kind this check does not know: the settings check it
    if not any(_is_kind(value, kind) for kind in allowed):
        wanted = " or ".join("an array" if kind is list else _TOML_KINDS[kind] for kind in allowed)
        raise ConfigError(f"{source}: [{table}] {key} = {_toml_kind(value)}: give {wanted}")


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return type(value) is bool
    if kind is float:
        return isinstance(value, (int, float)) and type(value) is not bool
    if kind is int:
        return isinstance(value, int) and type(value) is not bool
    return isinstance(value, kind)


def _toml_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, float):
        return "a fractional number"
    if isinstance(value, int):
        return "an integer"
    return "a string" if isinstance(value, str) else f"a {type(value).__name__} value"
