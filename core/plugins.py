"""Finding, loading and calling plugins.

Nothing happens at import time: :func:`get_plugin_manager` builds a fresh manager holding the
core's built-in plugin and, unless told otherwise, every entry point of the group
``netdiffusion`` that is not blocked by the environment variable ``NETDIFFUSION_BLOCK_PLUGINS``
(comma-separated plugin names). :func:`load_registries` then calls the ``register_*`` hooks one
plugin at a time, so that every registration is attributed to its plugin.

Errors (a plugin that fails to import, an unknown hook, a duplicate name) are raised as
:class:`~netdiffusion.registry.PluginError` with a one-line message.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from netdiffusion import hookspecs
from netdiffusion.registry import CommandEntry, PluginError, Registries

if TYPE_CHECKING:
    import click

__all__ = [
    "BLOCK_ENV",
    "BUILTIN_PLUGIN",
    "DEFAULT_PLUGINS",
    "ENTRYPOINT_GROUP",
    "LoadedPlugins",
    "PluginError",
    "PluginInfo",
    "PluginManager",
    "blocked_plugins",
    "default_plugins",
    "get_plugin_manager",
    "load_plugins",
    "load_registries",
    "reset_default_plugins",
]

ENTRYPOINT_GROUP = "netdiffusion"
"""Entry-point group that plugin distributions declare their hookimpl module in."""

BLOCK_ENV = "NETDIFFUSION_BLOCK_PLUGINS"
"""Environment variable: comma-separated names of entry-point plugins not to load."""

BUILTIN_PLUGIN = "netdiffusion"
"""Plugin name of the core's own built-ins (cannot be blocked)."""

DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = ((BUILTIN_PLUGIN, "netdiffusion._builtin_plugin"),)
"""(plugin name, module) of the built-in plugins, registered through the same hooks."""


@dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None
    builtin: bool = False


class PluginManager(pluggy.PluginManager):
    """A pluggy manager with the netdiffusion hookspecs and a record of each plugin's origin."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}

    def add_plugin(self, plugin: object, name: str, info: PluginInfo | None = None) -> None:
        """Register ``plugin`` (a module or object with hookimpls) under ``name``."""
        try:
            self.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"plugin {name!r} could not be registered: {exc}") from None
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        self.info[name] = info or PluginInfo(name=name, module=str(module))

    def check_pending(self) -> None:
        """Raise :class:`PluginError` if a plugin implements a hook that does not exist."""
        try:
            super().check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{exc} (not a netdiffusion hook; see docs/plugins.md)") from None


def blocked_plugins(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Plugin names listed in ``NETDIFFUSION_BLOCK_PLUGINS`` (comma-separated)."""
    value = (os.environ if environ is None else environ).get(BLOCK_ENV, "")
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _load_entrypoints(pm: PluginManager, blocked: frozenset[str]) -> None:
    """Register every entry point of the ``netdiffusion`` group not in ``blocked``."""
    eps = sorted(importlib.metadata.entry_points(group=ENTRYPOINT_GROUP), key=lambda ep: ep.name)
    for ep in eps:
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            continue
        if ep.name == BUILTIN_PLUGIN:
            raise PluginError(
                f"distribution {dist_name!r} declares a plugin named {ep.name!r}, "
                "which is reserved for the core"
            )
        if ep.name in pm.info:
            other = pm.info[ep.name].distribution
            raise PluginError(
                f"two plugins are named {ep.name!r}: one from distribution {other!r}, one from "
                f"{dist_name!r}; block one with {BLOCK_ENV}={ep.name} or uninstall it"
            )
        try:
            module = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}; "
                f"set {BLOCK_ENV}={ep.name} to skip it"
            ) from None
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            distribution=dist_name,
            version=dist.version if dist is not None else None,
            entry_point=f"{ep.name} = {ep.value}",
        )
        pm.add_plugin(module, ep.name, info)


def get_plugin_manager(load_entrypoints: bool = True) -> PluginManager:
    """A new plugin manager: the built-in plugin, plus entry-point plugins if asked.

    Entry-point plugins named in ``NETDIFFUSION_BLOCK_PLUGINS`` are skipped. Raises
    :class:`PluginError` (one line) when a plugin fails to import or implements an unknown hook.
    """
    from netdiffusion import __version__

    pm = PluginManager()
    for name, module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        info = PluginInfo(
            name=name,
            module=module_name,
            distribution="netdiffusion",
            version=__version__,
            builtin=True,
        )
        pm.add_plugin(module, name, info)
    if load_entrypoints:
        _load_entrypoints(pm, blocked_plugins())
    pm.check_pending()
    return pm


def _call_each(
    pm: pluggy.PluginManager,
    hook_name: str,
    kwargs_for: Callable[[str], dict[str, Any]],
    after: Callable[[str], None] | None = None,
) -> None:
    """Call ``hook_name``'s implementations one plugin at a time, in registration order."""
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():
        plugin = impl.plugin_name
        if impl.hookwrapper or impl.wrapper:
            raise PluginError(f"plugin {plugin!r}: {hook_name} cannot be a hook wrapper")
        kwargs = kwargs_for(plugin)
        try:
            impl.function(*(kwargs[arg] for arg in impl.argnames))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
            ) from None
        if after is not None:
            after(plugin)


def _register_commands(pm: pluggy.PluginManager, cli: click.Group, registries: Registries) -> None:
    """Call ``register_commands``, recording which plugin added which command."""
    before: dict[str, Any] = {}

    def snapshot(plugin: str) -> dict[str, Any]:
        before.clear()
        before.update(cli.commands)
        return {"cli": cli}

    def record(plugin: str) -> None:
        for name, command in list(cli.commands.items()):
            if before.get(name) is command:
                continue
            if name in before:
                old = registries.commands.get(name)
                cli.commands[name] = before[name]
                raise PluginError(
                    f"duplicate command {name!r}: registered by plugin "
                    f"{old.plugin if old else BUILTIN_PLUGIN!r} and by plugin {plugin!r}"
                )
            registries.commands.add(
                CommandEntry(
                    name=name,
                    plugin=plugin,
                    description=command.get_short_help_str(limit=100),
                    command=command,
                )
            )

    _call_each(pm, "register_commands", snapshot, record)


def load_registries(pm: pluggy.PluginManager, cli: click.Group | None = None) -> Registries:
    """Call every ``register_*`` hook and return what was registered, attributed per plugin.

    ``register_commands`` is called only when a click group ``cli`` is given.
    """
    reg = Registries()
    _call_each(pm, "register_encoders", lambda p: {"register": reg.encoder_callback(p)})
    _call_each(pm, "register_generators", lambda p: {"register": reg.generator_callback(p)})
    _call_each(pm, "register_repairers", lambda p: {"register": reg.repairer_callback(p)})
    _call_each(pm, "register_emitters", lambda p: {"register": reg.emitter_callback(p)})
    _call_each(pm, "register_sinks", lambda p: {"register": reg.sink_callback(p)})
    if cli is not None:
        _register_commands(pm, cli, reg)
        generate = cli.commands.get("generate")
        if generate is not None and reg.commands["generate"].plugin == BUILTIN_PLUGIN:
            from netdiffusion.commands.generate import attach_sinks

            attach_sinks(generate, reg.sinks)
    return reg


@dataclass
class LoadedPlugins:
    """A plugin manager and what its plugins registered."""

    pm: PluginManager
    registries: Registries

    def describe(self) -> list[dict[str, Any]]:
        """Every loaded plugin as JSON-ready dicts (what ``netdiffusion plugins`` prints)."""
        out: list[dict[str, Any]] = []
        for name, info in self.pm.info.items():
            plugin = self.pm.get_plugin(name)
            if plugin is None:
                continue
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            out.append(
                {
                    "name": name,
                    "module": info.module,
                    "distribution": info.distribution,
                    "version": info.version,
                    "builtin": info.builtin,
                    "hooks": hooks,
                    "registered": self.registries.by_plugin(name),
                }
            )
        return out


def load_plugins(load_entrypoints: bool = True, cli: click.Group | None = None) -> LoadedPlugins:
    """:func:`get_plugin_manager` then :func:`load_registries`, in one call."""
    pm = get_plugin_manager(load_entrypoints=load_entrypoints)
    return LoadedPlugins(pm=pm, registries=load_registries(pm, cli))


_default: LoadedPlugins | None = None


def default_plugins() -> LoadedPlugins:
    """The process-wide plugins (loaded on first call, entry points included; no CLI commands).

    Library code that needs an emitter or encoder by name uses this; the CLI keeps its own.
    """
    global _default
    if _default is None:
        _default = load_plugins()
    return _default


def reset_default_plugins() -> None:
    """Forget :func:`default_plugins`' cache (after installing or blocking a plugin)."""
    global _default
    _default = None
