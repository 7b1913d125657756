"""A model, dataset or metric from a Python file, without packaging: ``model: ./my_net.py:MyNet``.

A physicist iterating on an architecture wants to point at a file, not build a distribution and
rebuild an image for every change. A reference ``PATH.py:NAME`` names an object in that file:
exactly what a plugin registers (a :class:`~wcd_hpc.api.Model`, :class:`~wcd_hpc.api.Dataset` or
:class:`~wcd_hpc.api.Metric`), or a bare function — ``build(params, spec)`` (the experiment's
``param_space`` is then the whole search space), ``load(params, seed, cache_dir)`` or
``compute(y_true, y_score, meta)`` (the experiment's ``metric.direction`` then says which way is
better). A relative ``PATH`` is relative to the experiment file, where the reference is written.

This module only reads and checks a file; :func:`wcd_hpc.plugins.load_files` registers what it
found as a plugin of its own, and :mod:`wcd_hpc.queue.files` copies the file into the study's
run directory, so that every worker runs the content the sweep checked (an edit of the original
during a sweep changes nothing that runs). The file is executed from the bytes that were hashed,
never read twice, so the recorded checksum is the code that ran.

Every problem is one :class:`~wcd_hpc.errors.ConfigError` line naming a file and a line: the
experiment's line for a file or name that is not there, the Python file's line for an error
raised while importing it or for an object that breaks the contract.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import inspect
import os
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wcd_hpc.api import Dataset, Metric, Model
from wcd_hpc.errors import ConfigError, clip, one_line
from wcd_hpc.experiment.config import Experiment
from wcd_hpc.experiment.filerefs import is_file_reference
from wcd_hpc.experiment.resolve import error_at
from wcd_hpc.hookspecs import hookimpl
from wcd_hpc.output.files import not_a_file

__all__ = ["FileRef", "Loaded", "load_copy", "load_file", "of_experiment", "parse"]

#: Which hook registers each kind, and the bare function each kind accepts with its arguments.
HOOKS = {"model": "register_models", "dataset": "register_datasets", "metric": "register_metrics"}
KINDS: dict[str, type] = {"model": Model, "dataset": Dataset, "metric": Metric}
FUNCTIONS = {
    "model": "build(params, spec)",
    "dataset": "load(params, seed, cache_dir)",
    "metric": "compute(y_true, y_score, meta)",
}
_ARITY = {"model": 2, "dataset": 3, "metric": 3}
#: Prefix of the module names files are imported under: one module per content, never a name
#: a package could have, so two files of the same name (or two versions of one) never clash.
MODULE_PREFIX = "wcd_hpc_file_"

Blame = Callable[[str], ConfigError]


@dataclass(frozen=True)
class FileRef:
    """A reference as written (``./my_net.py:MyNet``), the file it names and the object's name."""

    kind: str
    reference: str
    path: Path
    attribute: str


def parse(kind: str, reference: str, base: Path, blame: Blame) -> FileRef:
    """Split ``reference`` and resolve its path against ``base`` (the experiment file's folder)."""
    path_text, _, attribute = reference.rpartition(":")
    if not attribute.isidentifier():
        raise blame(f"expected PATH.py:NAME with NAME a Python name, got {reference!r}")
    if any(c.isspace() for c in reference):
        raise blame(f"a file reference may not contain spaces, got {reference!r}")
    path = Path(path_text).expanduser()
    return FileRef(kind, reference, path if path.is_absolute() else base / path, attribute)


@dataclass(frozen=True)
class Loaded:
    """An object taken from a file, ready to register under its reference.

    ``obj`` is the plugin object (a bare function already wrapped) named after the reference,
    so that everything downstream finds it by the name the experiment wrote.
    """

    ref: FileRef
    sha256: str
    data: bytes
    obj: Any
    module: str

    def plugin(self) -> object:
        """A pluggy plugin whose one hook registers :attr:`obj`, as an installed plugin would."""

        def hook(register: Callable[[Any], None]) -> None:
            register(self.obj)

        hook.__name__ = HOOKS[self.ref.kind]
        return types.SimpleNamespace(**{hook.__name__: hookimpl(hook)})


def shown(path: Path) -> str:
    """A path as an error line shows it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def load_file(ref: FileRef, blame: Blame, direction: str | None = None) -> Loaded:
    """Read, hash, import and check the file a reference names (at sweep time)."""
    problem = not_a_file(ref.path)
    if problem is not None and problem != "file not found":  # a FIFO would block the read
        raise blame(f"{shown(ref.path)} {problem} (from {ref.reference!r})")
    try:
        data = ref.path.read_bytes()
    except FileNotFoundError:
        raise blame(f"no such file: {shown(ref.path)} (from {ref.reference!r})") from None
    except OSError as exc:
        raise blame(f"cannot read {shown(ref.path)}: {one_line(exc)}") from None
    return _load(ref, data, blame, direction)


def load_copy(ref: FileRef, sha256: str, direction: str | None = None) -> Loaded:
    """Load the copy a study recorded (in a worker); it must still hold the recorded content."""

    def blame(message: str) -> ConfigError:
        return ConfigError(shown(ref.path), ref.kind, None, message)

    try:
        data = ref.path.read_bytes()
    except OSError as exc:
        raise blame(f"cannot read the study's copy of {ref.reference!r}: {one_line(exc)}") from None
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise blame(
            f"the study's copy of {ref.reference!r} was changed (sha256 {found[:12]}, "
            f"recorded {sha256[:12]}); restore it or start a new study"
        )
    return _load(ref, data, blame, direction)


def _load(ref: FileRef, data: bytes, blame: Blame, direction: str | None) -> Loaded:
    sha = hashlib.sha256(data).hexdigest()
    module = _import(ref, data, sha)
    if not hasattr(module, ref.attribute):
        defined = sorted(n for n in vars(module) if not n.startswith("_"))
        close = difflib.get_close_matches(ref.attribute, defined, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = clip(", ".join(defined) or "nothing", 200)
        raise blame(f"{shown(ref.path)} defines no {ref.attribute!r}{hint} (it defines: {listed})")
    obj = _as_plugin(ref, getattr(module, ref.attribute), data, direction)
    return Loaded(ref, sha, data, obj, module.__name__)


def _import(ref: FileRef, data: bytes, sha: str) -> types.ModuleType:
    """Execute the file as a module of its own, once per content; errors name its line."""
    stem = re.sub(r"\W", "_", ref.path.stem)
    name = f"{MODULE_PREFIX}{sha[:12]}_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    module = types.ModuleType(name)
    module.__file__ = str(ref.path)
    sys.modules[name] = module  # before running it: dataclasses and pickling look it up
    try:
        exec(compile(data, str(ref.path), "exec"), module.__dict__)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        line = _line_in_file(exc, ref.path)
        what = f"SyntaxError: {exc.msg}" if isinstance(exc, SyntaxError) else one_line(exc)
        message = f"importing it raised {what} (python {shown(ref.path)} shows the traceback)"
        raise ConfigError(shown(ref.path), ref.kind, line, message) from None
    return module


def _line_in_file(exc: BaseException, path: Path) -> int | None:
    """The line of ``path`` where ``exc`` arose: its last frame in the file, or a syntax error's."""
    if isinstance(exc, SyntaxError) and exc.filename == str(path):
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _as_plugin(ref: FileRef, obj: Any, data: bytes, direction: str | None) -> Any:
    """The plugin object for ``obj``: a plugin object renamed, or a bare function wrapped."""
    expected = KINDS[ref.kind]

    def wrong(message: str) -> ConfigError:
        line = _definition_line(data, ref.attribute)
        return ConfigError(shown(ref.path), ref.kind, line, f"{ref.attribute} {message}")

    if isinstance(obj, (Model, Dataset, Metric)) and isinstance(obj, expected):
        return dataclasses.replace(obj, name=ref.reference)
    contract = f"expected a wcd_hpc.{expected.__name__} or a function {FUNCTIONS[ref.kind]}"
    if isinstance(obj, tuple(KINDS.values())) or not callable(obj):
        raise wrong(f"is of type {type(obj).__name__}; {contract}")
    try:
        inspect.signature(obj).bind(*([None] * _ARITY[ref.kind]))
    except TypeError:
        raise wrong(f"takes {_signature(obj)}; {contract}") from None
    except ValueError:  # no signature to inspect (a builtin): let the first call tell
        pass
    about = f"{ref.attribute} from {ref.path.name}"
    if ref.kind == "model":
        # No default space: the experiment's param_space is the space, so any name is taken.
        return Model(name=ref.reference, build=obj, description=about, extra_params=True)
    if ref.kind == "dataset":
        return Dataset(name=ref.reference, load=obj, description=about)
    if direction is None:
        raise wrong(
            f"is a bare function, which says nothing of its direction; set metric: "
            f"{{name: {ref.reference}, direction: maximize}} (or minimize)"
        )
    return Metric(name=ref.reference, direction=direction, compute=obj, description=about)


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "an unknown signature"


def _definition_line(data: bytes, name: str) -> int | None:
    """The line of the module-level statement that defines ``name`` (the last one wins)."""
    try:
        tree = ast.parse(data)
    except SyntaxError:
        return None
    line = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        else:
            continue
        if name in names:
            line = node.lineno
    return line


def of_experiment(exp: Experiment) -> tuple[Loaded, ...]:
    """The files an experiment's ``model``, ``dataset`` and ``metric`` name, read and checked.

    A reference in the experiment file is relative to that file; one given with ``--set`` is
    relative to the working directory, like every path typed on the command line.
    """
    found = []
    for kind in HOOKS:
        name = getattr(exp, kind)
        if not is_file_reference(name):
            if exp.setting(f"{kind}.sha256") is not None:
                message = "applies only to a file reference PATH.py:NAME"
                raise error_at(exp, f"{kind}.sha256", message)
            continue

        def blame(message: str, _kind: str = kind) -> ConfigError:
            return error_at(exp, _kind, message)

        typed = exp.origins.get(kind) or exp.origins.get(f"{kind}.name")
        base = Path.cwd() if typed else Path(exp.source).resolve().parent
        ref = parse(kind, name, base, blame)
        found.append(load_file(ref, blame, exp.direction if kind == "metric" else None))
    return tuple(found)
