"""What plugins registered: name -> entry, with the plugin that registered each one.

The core owns naming and duplicates: names are lowercase identifiers, and a second registration
of a name raises :class:`PluginError` with one line naming both plugins.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    import os

    import click

    from netdiffusion._traffic import Traffic

__all__ = [
    "CommandEntry",
    "EmitterEntry",
    "EncoderEntry",
    "Entry",
    "GeneratorEntry",
    "PluginError",
    "RegisterEmitter",
    "RegisterEncoder",
    "RegisterGenerator",
    "RegisterRepairer",
    "RegisterSink",
    "Registries",
    "Registry",
    "RepairerEntry",
    "Sink",
    "SinkEntry",
    "TrafficEncoder",
    "validate_name",
]

NAME_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
COMMAND_NAME_RE = re.compile(r"[a-z][a-z0-9-]*\Z")


class PluginError(Exception):
    """A plugin could not be loaded or registered something invalid; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@runtime_checkable
class TrafficEncoder(Protocol):
    """What ``register_encoders`` expects: an object with ``encode`` and ``decode``."""

    def encode(self, traffic: Traffic, /, **options: Any) -> Any:
        """Encode traffic into model input."""

    def decode(self, data: Any, /, **options: Any) -> Traffic:
        """Decode model output back into traffic."""


EmitFn = Callable[..., Any]
"""``write(traffic, path, **options)``: write ``traffic`` to ``path`` in one format."""

RepairFn = Callable[["Traffic"], "Traffic"]


class RegisterEncoder(Protocol):
    """The ``register`` callback given to ``register_encoders``."""

    def __call__(self, name: str, encoder: TrafficEncoder, *, description: str = "") -> None: ...


class RegisterGenerator(Protocol):
    """The ``register`` callback given to ``register_generators``."""

    def __call__(self, name: str, loader: Callable[..., Any], *, description: str = "") -> None: ...


class RegisterRepairer(Protocol):
    """The ``register`` callback given to ``register_repairers``."""

    def __call__(self, name: str, repair: RepairFn, *, description: str = "") -> None: ...


class Sink(Protocol):
    """What a sink's ``open`` returns: it sees the generated traffic, then the written output."""

    def add(self, traffic: Traffic, /) -> None:
        """Take one chunk of generated, repaired traffic (chunks come in time order)."""

    def close(self, output: os.PathLike[str], /) -> str | None:
        """Finish once the output file is complete; a one-line summary (or None)."""


class RegisterSink(Protocol):
    """The ``register`` callback given to ``register_sinks``."""

    def __call__(
        self,
        name: str,
        open: Callable[..., Sink],
        *,
        metavar: str,
        help: str,
        needs_pcap: bool = False,
    ) -> None: ...


class RegisterEmitter(Protocol):
    """The ``register`` callback given to ``register_emitters``."""

    def __call__(self, name: str, write: EmitFn, *, suffix: str, description: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One registered thing: its name, the plugin that registered it, a one-line description."""

    name: str
    plugin: str
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class EncoderEntry(Entry):
    """A registered encoder (an object with ``encode`` and ``decode``)."""

    encoder: TrafficEncoder


@dataclass(frozen=True, kw_only=True)
class GeneratorEntry(Entry):
    """A registered generator model type: ``loader`` loads a model of that type."""

    loader: Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class RepairerEntry(Entry):
    """A registered extra repair pass ``repair(traffic) -> traffic``."""

    repair: RepairFn


@dataclass(frozen=True, kw_only=True)
class EmitterEntry(Entry):
    """A registered output format: ``write(traffic, path, **options)``, file suffix, description."""

    write: EmitFn
    suffix: str

    def __call__(self, traffic: Traffic, path: str | os.PathLike[str], **options: Any) -> Any:
        """Write ``traffic`` to ``path`` in this format."""
        return self.write(traffic, path, **options)


@dataclass(frozen=True, kw_only=True)
class SinkEntry(Entry):
    """A registered generate sink: option ``--NAME METAVAR``; ``open(value, **context)``."""

    open: Callable[..., Sink]
    metavar: str
    needs_pcap: bool = False

    @property
    def option(self) -> str:
        """The ``generate`` option that turns it on."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True, kw_only=True)
class CommandEntry(Entry):
    """A CLI command added through ``register_commands``."""

    command: click.Command


E = TypeVar("E", bound=Entry)


def validate_name(kind: str, name: object, plugin: str, *, command: bool = False) -> str:
    """Return ``name`` if it is a valid ``kind`` name, else raise :class:`PluginError`."""
    pattern = COMMAND_NAME_RE if command else NAME_RE
    if not isinstance(name, str) or not pattern.match(name):
        rule = "a-z, 0-9, '-'" if command else "a-z, 0-9, '_'"
        raise PluginError(
            f"plugin {plugin!r} registered {kind} {name!r}: names must be lowercase identifiers "
            f"({rule}, starting with a letter)"
        )
    return name


class Registry(Mapping[str, E], Generic[E]):
    """Name -> entry for one kind of thing (``"emitter"``, ``"encoder"``, ...), in order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, E] = {}

    def add(self, entry: E) -> None:
        """Add ``entry``; a name registered before raises :class:`PluginError`."""
        validate_name(self.kind, entry.name, entry.plugin, command=self.kind == "command")
        if "\n" in entry.description or "\r" in entry.description:
            raise PluginError(
                f"plugin {entry.plugin!r} registered {self.kind} {entry.name!r} "
                "with a description of more than one line"
            )
        old = self._entries.get(entry.name)
        if old is not None:
            raise PluginError(
                f"duplicate {self.kind} {entry.name!r}: registered by plugin {old.plugin!r} "
                f"and by plugin {entry.plugin!r}"
            )
        self._entries[entry.name] = entry

    def require(self, name: str) -> E:
        """The entry called ``name``, or a one-line :class:`PluginError` listing the known ones."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            raise PluginError(f"unknown {self.kind} {name!r} (available: {known})") from None

    def by_plugin(self, plugin: str) -> list[str]:
        """Names registered by ``plugin``, in registration order."""
        return [e.name for e in self._entries.values() if e.plugin == plugin]

    def __getitem__(self, name: str) -> E:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)!r})"


def _check_callable(kind: str, name: str, plugin: str, obj: object, nargs: int | None) -> None:
    """Refuse non-callables and callables that cannot take ``nargs`` positional arguments."""
    if not callable(obj):
        raise PluginError(f"plugin {plugin!r} registered {kind} {name!r}: {obj!r} is not callable")
    if nargs is None:
        return
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without a signature: accept
        return
    try:
        sig.bind(*([None] * nargs))
    except TypeError:
        raise PluginError(
            f"plugin {plugin!r} registered {kind} {name!r}: {obj!r} cannot be called "
            f"with {nargs} positional argument(s)"
        ) from None


@dataclass
class Registries:
    """Everything the loaded plugins registered, one :class:`Registry` per hook."""

    encoders: Registry[EncoderEntry] = field(default_factory=lambda: Registry("encoder"))
    generators: Registry[GeneratorEntry] = field(default_factory=lambda: Registry("generator"))
    repairers: Registry[RepairerEntry] = field(default_factory=lambda: Registry("repairer"))
    emitters: Registry[EmitterEntry] = field(default_factory=lambda: Registry("emitter"))
    sinks: Registry[SinkEntry] = field(default_factory=lambda: Registry("sink"))
    commands: Registry[CommandEntry] = field(default_factory=lambda: Registry("command"))

    # --- ``register`` callbacks handed to the hooks, bound to the calling plugin ------------

    def encoder_callback(self, plugin: str) -> RegisterEncoder:
        """The ``register`` callback for ``register_encoders``, attributed to ``plugin``."""

        def register(name: str, encoder: TrafficEncoder, *, description: str = "") -> None:
            validate_name("encoder", name, plugin)
            for method in ("encode", "decode"):
                if not callable(getattr(encoder, method, None)):
                    raise PluginError(
                        f"plugin {plugin!r} registered encoder {name!r}: {encoder!r} "
                        f"has no {method}() method"
                    )
            self.encoders.add(
                EncoderEntry(name=name, plugin=plugin, description=description, encoder=encoder)
            )

        return register

    def generator_callback(self, plugin: str) -> RegisterGenerator:
        """The ``register`` callback for ``register_generators``, attributed to ``plugin``."""

        def register(name: str, loader: Callable[..., Any], *, description: str = "") -> None:
            validate_name("generator", name, plugin)
            _check_callable("generator", name, plugin, loader, None)
            self.generators.add(
                GeneratorEntry(name=name, plugin=plugin, description=description, loader=loader)
            )

        return register

    def repairer_callback(self, plugin: str) -> RegisterRepairer:
        """The ``register`` callback for ``register_repairers``, attributed to ``plugin``."""

        def register(name: str, repair: RepairFn, *, description: str = "") -> None:
            validate_name("repairer", name, plugin)
            _check_callable("repairer", name, plugin, repair, 1)
            self.repairers.add(
                RepairerEntry(name=name, plugin=plugin, description=description, repair=repair)
            )

        return register

    def emitter_callback(self, plugin: str) -> RegisterEmitter:
        """The ``register`` callback for ``register_emitters``, attributed to ``plugin``."""

        def register(name: str, write: EmitFn, *, suffix: str, description: str) -> None:
            validate_name("emitter", name, plugin)
            _check_callable("emitter", name, plugin, write, 2)
            if not isinstance(suffix, str) or not re.fullmatch(r"\.[A-Za-z0-9_.-]+", suffix):
                raise PluginError(
                    f"plugin {plugin!r} registered emitter {name!r}: suffix {suffix!r} "
                    "must look like '.ext'"
                )
            if not isinstance(description, str) or not description.strip():
                raise PluginError(
                    f"plugin {plugin!r} registered emitter {name!r} without a description"
                )
            self.emitters.add(
                EmitterEntry(
                    name=name, plugin=plugin, description=description, write=write, suffix=suffix
                )
            )

        return register

    def sink_callback(self, plugin: str) -> RegisterSink:
        """The ``register`` callback for ``register_sinks``, attributed to ``plugin``."""

        def register(
            name: str,
            open: Callable[..., Sink],
            *,
            metavar: str,
            help: str,
            needs_pcap: bool = False,
        ) -> None:
            validate_name("sink", name, plugin)
            _check_callable("sink", name, plugin, open, 1)
            for what, text in (("metavar", metavar), ("help", help)):
                if not isinstance(text, str) or not text.strip():
                    raise PluginError(f"plugin {plugin!r} registered sink {name!r} without {what}")
            self.sinks.add(
                SinkEntry(
                    name=name, plugin=plugin, description=help, open=open, metavar=metavar,
                    needs_pcap=bool(needs_pcap),
                )
            )  # fmt: skip

        return register

    # --- use ----------------------------------------------------------------------------

    def apply_repairers(self, traffic: Traffic) -> Traffic:
        """Run every registered extra repair pass on ``traffic``, in registration order."""
        from netdiffusion._traffic import Traffic

        for entry in self.repairers.values():
            out = entry.repair(traffic)
            if not isinstance(out, Traffic):
                raise PluginError(
                    f"repairer {entry.name!r} of plugin {entry.plugin!r} returned "
                    f"{type(out).__name__}, not Traffic"
                )
            traffic = out
        return traffic

    def by_kind(self) -> dict[str, Registry[Any]]:
        """The registries by plural kind name (``"emitters"``, ...), in a fixed order."""
        return {
            "encoders": self.encoders,
            "generators": self.generators,
            "repairers": self.repairers,
            "emitters": self.emitters,
            "sinks": self.sinks,
            "commands": self.commands,
        }

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        """What ``plugin`` registered: plural kind -> names (kinds with nothing are left out)."""
        out = {kind: reg.by_plugin(plugin) for kind, reg in self.by_kind().items()}
        return {kind: names for kind, names in out.items() if names}
