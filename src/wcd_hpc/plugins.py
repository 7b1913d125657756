"""The plugin manager: built-in plugins, entry points and model files, loaded through one path.

Built-ins are imported by module path and third-party plugins through the ``wcd_hpc`` entry-point
group, but both then go through :func:`load_plugin` and :meth:`Registry.collect`, so a built-in
gets no privilege a ``pip install``-ed plugin lacks. Every hook implementation is called on its
own and every object it registers is checked, so one broken plugin yields one line naming its
distribution while the rest keep working. A model, dataset or metric named by a file
(``model: ./my_net.py:MyNet``, read by :mod:`wcd_hpc.experiment.modelfiles`) is a plugin of its
own too, loaded by :func:`load_files`. ``WCD_HPC_TRACE_PLUGINS=1`` writes one stderr line per
plugin loaded and per hook call (with what it registered), for authors debugging their packaging.

Plugin code runs inside :func:`plugin_code` while plugins load: what it prints goes to stderr
(stdout belongs to the command, whose ``--json`` must stay JSON), and a ``sys.exit()`` in it is
one more plugin failure instead of the end of every command. The verbs of wcd-hpc itself are
not a plugin's to replace (:meth:`Registry.add_commands`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType, TracebackType
from typing import Any, TypeVar

import pluggy

from wcd_hpc import __version__, hookspecs
from wcd_hpc.api import DEFAULT_SPACE, Dataset, Domain, Metric, Model
from wcd_hpc.default_plugins import BUILTIN_PLUGINS
from wcd_hpc.errors import ConfigError, PluginError, one_line
from wcd_hpc.experiment import modelfiles
from wcd_hpc.experiment.config import Experiment
from wcd_hpc.output.masking import mask_text

ENV_ALLOW = "WCD_HPC_PLUGINS"
ENV_TRACE = "WCD_HPC_TRACE_PLUGINS"
KINDS: dict[str, type] = {"model": Model, "dataset": Dataset, "metric": Metric}
HOOK_OF_KIND = {
    "model": "register_models",
    "dataset": "register_datasets",
    "metric": "register_metrics",
}


T = TypeVar("T")


def trace(message: str) -> None:
    """One line to stderr when ``WCD_HPC_TRACE_PLUGINS`` is set (read each time: tests set it)."""
    if os.environ.get(ENV_TRACE, "").strip().lower() not in ("", "0", "false", "no"):
        print(f"wcd-hpc trace: {mask_text(message)}", file=sys.stderr, flush=True)


def plugin_code(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` of a plugin, contained: its stdout goes to stderr, and a
    ``sys.exit()`` becomes a :class:`PluginError` that the caller reports like any failure."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return func(*args, **kwargs)
    except SystemExit as exc:
        raise PluginError(f"called sys.exit({exc.code!r})") from None


@dataclass(frozen=True)
class Source:
    """Where a plugin comes from: the entry-point (or module) name and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' (distribution {self.distribution} {self.version})"


@dataclass(frozen=True)
class Entry:
    """One registered object and the plugin that registered it."""

    kind: str
    name: str
    obj: Any
    source: Source


@dataclass
class Registry:
    """Everything the loaded plugins registered, plus one error line per problem."""

    models: dict[str, Entry] = field(default_factory=dict)
    datasets: dict[str, Entry] = field(default_factory=dict)
    metrics: dict[str, Entry] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: Problems that leave every plugin usable (a ``WCD_HPC_PLUGINS`` name that matches none).
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, Source] = field(default_factory=dict)
    manager: pluggy.PluginManager | None = None

    def table(self, kind: str) -> dict[str, Entry]:
        return {"model": self.models, "dataset": self.datasets, "metric": self.metrics}[kind]

    def entries(self) -> list[Entry]:
        return [*self.models.values(), *self.datasets.values(), *self.metrics.values()]

    def problem(self, source: Source, text: str) -> None:
        """Record one error line about ``source`` (masked: it may quote a plugin's exception)."""
        self.errors.append(mask_text(f"{source}: {text}"))

    def add(self, kind: str, obj: object, source: Source) -> None:
        """Validate and store one object; problems become error lines, never exceptions."""
        problem = _malformed(kind, obj)
        if problem:
            self.problem(source, f"malformed {kind}: {problem}; ignored")
            return
        name = obj.name  # type: ignore[attr-defined]
        table = self.table(kind)
        if name in table:
            first = table[name].source
            self.problem(
                source,
                f"{kind} name '{name}' is already registered by "
                f"{first.plugin} ({first.distribution}); ignored",
            )
            return
        table[name] = Entry(kind, name, obj, source)

    def collect(self, only: str | None = None) -> None:
        """Call every hook implementation separately (or those of plugin ``only``)."""
        assert self.manager is not None
        for kind, hook_name in HOOK_OF_KIND.items():
            hook = getattr(self.manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                if only is not None and impl.plugin_name != only:
                    continue
                source = self.sources[impl.plugin_name]

                got: list[str] = []

                def register(
                    obj: object, _kind: str = kind, _src: Source = source, _got: list[str] = got
                ) -> None:
                    _got.append(f"{_kind} {getattr(obj, 'name', type(obj).__name__)!r}")
                    self.add(_kind, obj, _src)

                errors_before = len(self.errors)
                try:
                    plugin_code(impl.function, register=register)
                except Exception as exc:  # a plugin's bug must not take the others down
                    self.problem(source, f"{hook_name} raised {one_line(exc)}")
                problems = self.errors[errors_before:]
                trace(
                    f"{hook_name}() of {source} registered {', '.join(got) or 'nothing'}"
                    + "".join(f"; error: {line}" for line in problems)
                )

    def add_commands(self, app: Any) -> None:
        """Let plugins add CLI verbs; a failing plugin is reported and skipped.

        A verb of wcd-hpc itself, or one another plugin added first, is refused with the
        plugin named: a plugin's ``sweep`` must not silently replace ours.
        """
        if self.manager is None:
            return
        builtin = _verbs(app.registered_commands, app.registered_groups)
        owners = dict.fromkeys(builtin, "a built-in verb of wcd-hpc")
        for impl in self.manager.hook.register_commands.get_hookimpls():
            source = self.sources[impl.plugin_name]
            for commands, groups in self._verbs_added(source, impl.function, app):
                taken = [verb for verb in _verbs(commands, groups) if verb in owners]
                if taken:
                    self.problem(source, f"command '{taken[0]}' is {owners[taken[0]]}; ignored")
                    continue
                app.registered_commands.extend(commands)
                app.registered_groups.extend(groups)
                owner = f"already registered by {source}"
                owners.update(dict.fromkeys(_verbs(commands, groups), owner))
            trace(f"register_commands() of {source} called")

    def _verbs_added(
        self, source: Source, hook: Callable[..., object], app: Any
    ) -> list[tuple[list[Any], list[Any]]]:
        """Call one ``register_commands`` and return what it added, one verb or group each,
        with ``app`` put back as it was: nothing a plugin did to it (a verb removed, the root
        callback replaced, half a registration before it raised) stays unchecked."""
        commands, groups = list(app.registered_commands), list(app.registered_groups)
        callback = app.registered_callback
        added: list[tuple[list[Any], list[Any]]] = []
        try:
            plugin_code(hook, app=app)
        except Exception as exc:
            self.problem(source, f"register_commands raised {one_line(exc)}")
        else:
            added += [([c], []) for c in _new(app.registered_commands, commands)]
            added += [([], [g]) for g in _new(app.registered_groups, groups)]
        app.registered_commands[:], app.registered_groups[:] = commands, groups
        app.registered_callback = callback
        return added


def _new(items: list[Any], before: list[Any]) -> list[Any]:
    """The entries of ``items`` that are not (the very objects) in ``before``."""
    return [item for item in items if not any(item is old for old in before)]


def _verbs(commands: list[Any], groups: list[Any]) -> list[str]:
    """The verbs typer makes of these command and group registrations (a group without a name
    adds its commands to the parent, so those are its verbs)."""
    from typer.main import get_command_name, solve_typer_info_defaults

    names = [c.name or get_command_name(getattr(c.callback, "__name__", "")) for c in commands]
    for group in groups:
        name = solve_typer_info_defaults(group).name
        sub = group.typer_instance
        names += [name] if name else _verbs(sub.registered_commands, sub.registered_groups)
    return names


def _malformed(kind: str, obj: object) -> str | None:
    """Return why ``obj`` is not a usable plugin object of ``kind``, or None if it is."""
    expected = KINDS[kind]
    if not isinstance(obj, expected):
        return f"expected a wcd_hpc.{expected.__name__}, got {type(obj).__name__}"
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.strip() or any(c.isspace() for c in name):
        return f"name must be a non-empty string without spaces, got {name!r}"
    if isinstance(obj, Model):
        if not callable(obj.build):
            return f"model '{name}': build must be callable"
        if not hasattr(obj.space, "items"):
            return f"model '{name}': space must be a mapping"
        extra = obj.extra_params
        if extra is not True and not (
            isinstance(extra, tuple) and all(isinstance(e, str) for e in extra)
        ):
            return f"model '{name}': extra_params must be a tuple of names or True, got {extra!r}"
        from wcd_hpc.experiment.domains import domains_of, problems
        from wcd_hpc.experiment.space import Space, SpaceError

        domains = obj.domains
        if not hasattr(domains, "items") or not all(
            isinstance(k, str) and isinstance(v, Domain) for k, v in domains.items()
        ):
            return f"model '{name}': domains must map parameter names to wcd_hpc.Domain"
        try:
            space = Space.from_mapping(dict(obj.space))
        except SpaceError as exc:
            return f"model '{name}': default space: {exc}"
        for key, message in problems(space, domains_of(obj)):
            return f"model '{name}': default space: {key}: {message}"
        if not hasattr(obj.spaces, "items"):
            return f"model '{name}': spaces must be a mapping of names to spaces"
        for variant, named in obj.spaces.items():
            if (
                not isinstance(variant, str)
                or variant == DEFAULT_SPACE
                or not hasattr(named, "items")
            ):
                return f"model '{name}': spaces: {variant!r} must name a mapping (not 'default')"
            try:
                parsed = Space.from_mapping(dict(named))
            except SpaceError as exc:
                return f"model '{name}': space {variant!r}: {exc}"
            for key, message in problems(parsed, domains_of(obj)):
                return f"model '{name}': space {variant!r}: {key}: {message}"
    elif isinstance(obj, Dataset):
        if not callable(obj.load):
            return f"dataset '{name}': load must be callable"
    elif isinstance(obj, Metric):
        if obj.direction not in ("maximize", "minimize"):
            return (
                f"metric '{name}': direction must be 'maximize' or 'minimize', "
                f"got {obj.direction!r}"
            )
        if not callable(obj.compute):
            return f"metric '{name}': compute must be callable"
    return None


def allowed_plugins() -> set[str] | None:
    """Names from ``WCD_HPC_PLUGINS`` (entry-point or distribution names), or None for all.

    Built-ins always load: without them no experiment could run, and the variable exists to keep
    untrusted or broken third-party plugins out, not to strip the core.
    """
    raw = os.environ.get(ENV_ALLOW)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=hookspecs.PROJECT)


def new_registry() -> Registry:
    """An empty registry with its own plugin manager that knows the wcd-hpc hook specs."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return Registry(manager=pm)


def load_plugin(registry: Registry, source: Source, loader: Callable[[], object]) -> bool:
    """Import one plugin and register it with the manager; a failure becomes one error line.

    Public so that :mod:`wcd_hpc.testing` loads a plugin exactly the way ``load_registry`` does.
    """
    assert registry.manager is not None
    try:
        plugin = plugin_code(loader)
    except Exception as exc:
        registry.problem(source, f"failed to import: {one_line(exc)}")
        trace(f"{source} failed to import: {one_line(exc)}")
        return False
    try:
        registry.manager.register(plugin, name=source.plugin)
    except Exception as exc:  # e.g. a hookimpl with an unknown hook name or wrong arguments
        registry.problem(source, f"rejected by the plugin manager: {one_line(exc)}")
        trace(f"{source} rejected by the plugin manager: {one_line(exc)}")
        return False
    registry.sources[source.plugin] = source
    trace(f"loaded {source} from {getattr(plugin, '__name__', plugin)!s}")
    return True


def load_builtins(registry: Registry) -> None:
    """Load the built-in plugins into ``registry`` (under the ``wcd-hpc`` distribution)."""
    for module in BUILTIN_PLUGINS:
        load_plugin(registry, Source(module, "wcd-hpc", __version__), _import_module(module))


def entry_point_source(ep: metadata.EntryPoint) -> Source:
    """The :class:`Source` of an entry point: its name and its distribution's name and version."""
    dist = ep.dist.name if ep.dist is not None else "unknown"
    version = ep.dist.version if ep.dist is not None else "?"
    return Source(ep.name, dist, version)


def _import_module(path: str) -> Callable[[], ModuleType]:
    return lambda: importlib.import_module(path)


def load_registry(*, external: bool = True) -> Registry:
    """Load built-in plugins, then the allowed entry-point plugins, then collect registrations."""
    registry = new_registry()
    load_builtins(registry)
    if external:
        allow = allowed_plugins()
        installed = sorted(_entry_points(), key=lambda e: e.name)
        if allow is not None:
            _warn_unmatched(registry, allow, [entry_point_source(ep) for ep in installed])
        for ep in installed:
            source = entry_point_source(ep)
            if allow is not None and ep.name not in allow and source.distribution not in allow:
                trace(f"skipped {source}: not in {ENV_ALLOW}")
                continue
            if ep.name in registry.sources:
                registry.problem(
                    source, "another plugin with this entry-point name is already loaded; ignored"
                )
                continue
            load_plugin(registry, source, ep.load)
    registry.collect()
    return registry


def load_files(registry: Registry, loaded: Iterable[modelfiles.Loaded]) -> None:
    """Register objects from model files, each as a plugin of its own (``experiment.modelfiles``).

    The same reference loaded again with other content (a study's copy after the original, in
    one process) replaces the first; a problem the registry finds is one line at the file.
    """
    assert registry.manager is not None
    for item in loaded:
        ref = item.ref
        source = Source(ref.reference, modelfiles.shown(ref.path), f"sha256:{item.sha256[:12]}")
        if registry.sources.get(ref.reference) == source:
            continue
        if ref.reference in registry.sources:
            registry.manager.unregister(name=ref.reference)
            registry.table(ref.kind).pop(ref.reference, None)
        before = len(registry.errors)
        if load_plugin(registry, source, item.plugin):
            registry.collect(only=ref.reference)
        if ref.reference not in registry.table(ref.kind):
            problem = "; ".join(registry.errors[before:]) or "nothing registered"
            del registry.errors[before:]  # raised once here, not warned again by every command
            raise ConfigError(source.distribution, ref.kind, None, problem)


def load_experiment_files(registry: Registry, exp: Experiment) -> tuple[modelfiles.Loaded, ...]:
    """Read the files an experiment names (``model: ./my_net.py:MyNet``) and register them."""
    loaded = modelfiles.of_experiment(exp)
    load_files(registry, loaded)
    return loaded


def _warn_unmatched(registry: Registry, allow: set[str], installed: list[Source]) -> None:
    """A name in ``WCD_HPC_PLUGINS`` that matches no installed plugin is most likely a typo,
    and silently loading fewer plugins than meant would surface later as an unknown model."""
    known = sorted({n for s in installed for n in (s.plugin, s.distribution)})
    for name in sorted(allow - set(known)):
        listed = ", ".join(known) if known else "none installed"
        registry.warnings.append(
            f"{ENV_ALLOW}: no installed plugin is named '{name}' (plugins: {listed})"
        )


_CACHE: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded once (workers and the CLI share it)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = load_registry()
    return _CACHE


def blame(exc: BaseException, model: str, registry: Registry | None = None) -> Source | None:
    """The third-party source of model ``model`` if ``exc`` was raised in its plugin's own code.

    A trial's failure is attributed to a plugin only when a frame of its traceback belongs to the
    package that defines the model's builder, so a core error (a bad optimizer name) is never
    blamed on a plugin. Built-ins share the ``wcd_hpc`` package with the core and are never blamed.
    """
    entry = (registry or get_registry()).models.get(model)
    if entry is None or entry.source.distribution == "wcd-hpc":
        return None
    package = str(getattr(entry.obj.build, "__module__", "") or "").split(".")[0]
    tb: TracebackType | None = exc.__traceback__
    while package and tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".")[0] == package:
            return entry.source
        tb = tb.tb_next
    return None
