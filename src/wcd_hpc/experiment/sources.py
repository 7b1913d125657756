"""Reading setting files: text to raw data, plus where each key was written.

This is the part of :mod:`wcd_hpc.experiment.config` that knows file formats and nothing about what
the settings mean. It is kept apart so the layering and validation there read as plain rules over
dicts, while the format quirks live here: every error must name the file and the line, and the YAML
or TOML parser's own messages need translating into that one-line form.

The experiment file is read with ``yaml.compose`` as well as constructed, for two reasons: the node
tree gives each key's line for error messages, and some ``param_space`` lists must be taken from the
*source text*. A list parameter has three spellings (:func:`_raw_value`):

- ``"[randint(2, 20), randint(2, 20)]"``, one string holding a list expression: the canonical
  one, because every YAML tool (PyYAML, OmegaConf, an editor's formatter) keeps it as it is;
- a YAML list of expression strings, ``["randint(4, 12)", 6]`` or a block list: each item is read
  by the search-space language, which is also what a YAML tool writes such a list back as;
- ``[randint(2, 20), randint(2, 20)]`` unquoted, kept for existing files: to YAML it is a list of
  four fragments (``'randint(2'``, ``'20)'``, …), so its source text is read instead. A file
  loaded and dumped by another tool keeps the fragments, which are then refused with a hint.

:class:`ConfigError` belongs to the error family in :mod:`wcd_hpc.errors`.
"""

from __future__ import annotations

import collections
import difflib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from wcd_hpc.errors import MAX_ECHO, ConfigError, clip
from wcd_hpc.output.files import not_a_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "HOLDER_PREFIX",
    "ConfigError",
    "anchor_holder",
    "compose",
    "got",
    "key_text",
    "load_profile",
    "profile_path",
    "read_text",
    "read_value",
    "suggest",
]


def got(value: object) -> str:
    """How a wrong value is shown after 'got': short, and with its YAML-visible kind.

    Cut to :data:`~wcd_hpc.errors.MAX_ECHO` characters: the value may be a 1 MB string or a
    list nested hundreds deep, and the error must stay one readable line.
    """
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    try:
        text = repr(list(value)) if isinstance(value, (list, tuple)) else repr(value)
    except (RecursionError, ValueError):  # too deep, or an int of over 4300 digits
        text = f"<{type(value).__name__} too large to show>"
    return f"a list {clip(text)}" if isinstance(value, (list, tuple)) else clip(text)


def key_text(key: object) -> str:
    """A key as echoed in an error: cut short, and quoted if a newline would break the line.

    A third of :data:`~wcd_hpc.errors.MAX_ECHO`: an unknown key's error also lists the twenty-odd
    known ones, and the whole line must stay one short line.
    """
    text = str(key)
    return clip(text if text.isprintable() else repr(text), MAX_ECHO // 3)


#: How a validator reports a bad value: ``fail(key, expectation)`` returns the error to raise
#: (the caller knows the file and line of ``key``).
Fail = Callable[[str, str], ConfigError]


def one_of(value: Any, allowed: Sequence[str], key: str, fail: Fail) -> str:
    """``value`` if it is one of ``allowed``; else ``key: expected one of …, got …`` with a
    "did you mean" when one is close (the list is in the message already)."""
    if value not in allowed:
        close = difflib.get_close_matches(value, allowed, n=1) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise fail(key, f"expected one of {', '.join(allowed)}, got {got(value)}{hint}")
    return str(value)


def suggest(word: str, known: Sequence[str]) -> str:
    """A hint after an unknown name: the likely typo fix, or else the whole list to pick from."""
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    shown: list[str] = []
    for name in known:  # the line stays one line: a long list is cut, and says how much is left
        if shown and len(", ".join([*shown, name])) > HINT_WIDTH:
            more = len(known) - len(shown)
            return f" (known: {', '.join(shown)} and {more} more)"
        shown.append(name)
    return f" (known: {', '.join(shown)})"


#: How many characters of known names an error line lists before it says "… N more".
HINT_WIDTH = 160


# --------------------------------------------------------------------------------------------
# Reading files


#: A top-level key starting with this holds YAML anchors for the rest of the file
#: (``x-common: &common {…}``, then ``params: *common``), as in Docker Compose files: it is
#: read for its anchors and otherwise ignored, so that no real key is ever spelled this way.
HOLDER_PREFIX = "x-"


def anchor_holder(key: object) -> bool:
    """Whether a top-level ``key`` of an experiment file only holds anchors (``x-…``)."""
    return isinstance(key, str) and key.startswith(HOLDER_PREFIX)


def read_text(path: Path) -> str:
    """The file's text, or a one-line :class:`ConfigError` instead of an ``OSError`` traceback
    (or a read that never ends: a FIFO is refused before it is opened)."""
    problem = not_a_file(path)
    if problem is not None and problem != "file not found":
        raise ConfigError(str(path), None, None, problem)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        message = {
            FileNotFoundError: "no such file",
            IsADirectoryError: "is a directory, expected a file",
            UnicodeDecodeError: "is not UTF-8 text",
        }.get(type(exc), f"cannot read: {getattr(exc, 'strerror', exc)}")
        raise ConfigError(str(path), None, None, message) from None


#: Deepest nesting of lists and mappings in a settings file. Real files are 3 or 4 levels deep;
#: PyYAML composes recursively, and so do the copies, comparisons and JSON encodings that every
#: setting goes through later, so a deeper document is refused before any of them run.
MAX_DEPTH = 64
#: Most values in a settings file, counting each use of an alias (``*name``) in full: a few
#: lines of nested aliases can stand for 10**9 values, which would take hours and all memory to
#: copy and store (the "billion laughs" attack).
MAX_VALUES = 100_000


def compose(
    text: str, file: str, *, value: bool = False, raw: Sequence[str] = ()
) -> tuple[Any, dict[str, int], dict[str, Any] | None]:
    """Construct the document; also return key lines and the raw-text ``param_space``.

    ``value=True`` reads one value rather than a settings file (``--set KEY=VALUE``): empty text
    is null, and no key is special. ``raw`` names (dotted) the keys whose unquoted scalar text is
    kept as written rather than read as YAML. Hostile input (nesting deeper than PyYAML can
    recurse, a document too large for memory, an integer too long for Python to read) gives a
    one-line :class:`ConfigError`, not a traceback.
    """
    loader = yaml.SafeLoader(text)
    node: yaml.Node | None = None
    space: dict[str, Any] | None = None
    try:
        node = loader.get_single_node()
        if node is None and value:
            return None, {}, space
        if node is None:
            raise ConfigError(file, None, None, "is empty; expected a mapping of settings")
        _check_size(node, file)
        data = loader.construct_document(node)
        lines: dict[str, int] = {}
        _key_lines(node, "", lines, file)
        if not value:
            space = _raw_param_space(loader, text, node, file)
            if isinstance(data, dict):
                _raw_scalars(node, data, raw)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(file, exc) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, None, None, f"invalid YAML: {clip(str(exc))}") from None
    except RecursionError:
        message = f"lists and mappings nested more than {MAX_DEPTH} levels deep"
        raise ConfigError(file, None, loader.get_mark().line + 1, message) from None
    except MemoryError:
        raise ConfigError(file, None, None, "is too large to read") from None
    except ConfigError:
        raise
    except ValueError as exc:  # a date like 2024-13-01, an integer of over 4300 digits
        message = f"invalid YAML: cannot read a value: {clip(str(exc))}"
        raise ConfigError(file, None, _unreadable_line(node), message) from None
    finally:
        loader.dispose()
    return data, lines, space


def _unreadable_line(root: yaml.Node | None) -> int | None:
    """The line of the first scalar that cannot be constructed (the error does not say)."""
    todo = collections.deque([root] if root is not None else [])
    while todo:  # only after _check_size passed: bounded
        node = todo.popleft()
        if isinstance(node, yaml.ScalarNode):
            try:
                yaml.SafeLoader("").construct_object(node)
            except ValueError:
                return int(node.start_mark.line) + 1
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in node.value for n in pair)
    return None


def _check_size(root: yaml.Node, file: str) -> None:
    """Refuse a document nested deeper than :data:`MAX_DEPTH` or with over :data:`MAX_VALUES`.

    Iterative, and counts an aliased node each time it is used, so that neither a deep document
    nor a self-referencing alias (``&a [*a]``, infinitely deep) can make it recurse or loop.
    """
    todo: list[tuple[yaml.Node, int]] = [(root, 1)]
    count = 0
    while todo:
        node, depth = todo.pop()
        count += 1
        where = node.start_mark.line + 1
        if depth > MAX_DEPTH:
            message = f"lists and mappings nested more than {MAX_DEPTH} levels deep"
            raise ConfigError(file, None, where, message)
        if count > MAX_VALUES:
            message = f"too large: more than {MAX_VALUES} values (each alias counted in full)"
            raise ConfigError(file, None, where, message)
        if isinstance(node, yaml.SequenceNode):
            todo.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for knode, vnode in node.value:
                todo += [(knode, depth + 1), (vnode, depth + 1)]


def read_value(text: str, origin: str, key: str) -> Any:
    """One value given as YAML text (``--set KEY=VALUE``), with a file's limits; empty is null."""
    try:
        value, _, _ = compose(text, origin, value=True)
    except ConfigError as exc:
        problem = exc.message.removeprefix("invalid YAML: ")
        raise ConfigError(
            origin, key_text(key), None, f"cannot read {got(text)}: {problem}"
        ) from None
    return value


def _yaml_error(file: str, exc: yaml.MarkedYAMLError) -> ConfigError:
    """YAML marks the token where it gave up; say also what it was parsing, and where."""
    mark, problem = exc.problem_mark or exc.context_mark, exc.problem or "not valid YAML"
    if exc.context and exc.context_mark and exc.context_mark.line != getattr(mark, "line", None):
        problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
    source = mark.buffer.splitlines() if mark and mark.buffer else []
    if "flow" in (exc.context or "") and mark and "(" in "".join(source[mark.line : mark.line + 1]):
        problem += "; quote search-space expressions that contain brackets or commas"
    return ConfigError(file, None, mark.line + 1 if mark else None, f"invalid YAML: {problem}")


def _key_lines(node: yaml.Node, prefix: str, lines: dict[str, int], file: str) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    for knode, vnode in node.value:
        if not isinstance(knode, yaml.ScalarNode):
            continue
        key = f"{prefix}.{knode.value}" if prefix else str(knode.value)
        line = knode.start_mark.line + 1
        if key in lines:  # YAML itself keeps the last silently; that hides mistakes.
            message = f"duplicate key (first at line {lines[key]})"
            raise ConfigError(file, key_text(key), line, message)
        lines[key] = line
        _key_lines(vnode, key, lines, file)


def _mapping_value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for knode, vnode in node.value:
            if isinstance(knode, yaml.ScalarNode) and knode.value == key:
                return cast(yaml.Node, vnode)
    return None


def _raw_scalars(root: yaml.Node, data: dict[str, Any], raw: Sequence[str]) -> None:
    """Unquoted ``02:00:00`` is a base-60 integer to YAML 1.1; keep the text the user wrote."""
    for dotted in raw:
        *parents, last = dotted.split(".")
        node: yaml.Node | None = root
        target: Any = data
        for part in parents:
            node = _mapping_value(node, part)
            target = target.get(part) if isinstance(target, dict) else None
        scalar = _mapping_value(node, last)
        plain = isinstance(scalar, yaml.ScalarNode) and scalar.style is None
        if plain and isinstance(target, dict):
            target[last] = scalar.value  # type: ignore[union-attr]


def _raw_param_space(loader: yaml.SafeLoader, text: str, root: yaml.Node, file: str) -> Any:
    node = _mapping_value(root, "param_space")
    if not isinstance(node, yaml.MappingNode):
        return None
    out: dict[str, Any] = {}
    for knode, vnode in node.value:
        key = str(knode.value)
        out[key] = _raw_value(loader, text, vnode, file, f"param_space.{key}")
    return out


def _raw_value(loader: yaml.SafeLoader, text: str, node: yaml.Node, file: str, key: str) -> Any:
    """A ``param_space`` value as YAML reads it, except a flow list whose calls YAML split.

    YAML ends a plain scalar in a flow list at every comma, so ``[randint(2, 20), 5]`` reaches
    us as ``'randint(2'``, ``'20)'``, ``5``; unbalanced parentheses in a plain item are the sign,
    and the list's source text is read as one expression instead. Any other list is YAML's own,
    item by item, as every YAML tool sees it: ``["randint(4, 12)", 6]`` is a distribution and a
    constant, never two constants.
    """
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node, deep=True)
    if isinstance(node, yaml.SequenceNode) and node.flow_style and _split_by_yaml(node):
        return text[node.start_mark.index : node.end_mark.index]
    if isinstance(node, yaml.SequenceNode):
        return [_raw_value(loader, text, item, file, key) for item in node.value]
    raise ConfigError(
        file,
        key,
        node.start_mark.line + 1,
        "expected an expression, a constant or a list, got a mapping",
    )


def _split_by_yaml(root: yaml.SequenceNode) -> bool:
    """Whether a plain scalar anywhere in this flow list has unbalanced parentheses."""
    todo: list[yaml.Node] = [root]
    while todo:  # only after _check_size passed: bounded
        node = todo.pop()
        if isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
        elif (
            isinstance(node, yaml.ScalarNode)
            and node.style is None
            and node.value.count("(") != node.value.count(")")
        ):
            return True
    return False


# --------------------------------------------------------------------------------------------
# Site profiles


def profile_path(name_or_path: str, search_dirs: Sequence[Path]) -> Path:
    """The file of a site profile given by path or by name (``<name>.toml`` in ``search_dirs``,
    the first found)."""
    path = Path(name_or_path)
    if path.suffix != ".toml" and "/" not in name_or_path:
        found = [Path(d) / f"{name_or_path}.toml" for d in search_dirs]
        existing = [p for p in found if p.is_file()]
        if not existing:
            known = sorted(
                {p.stem for d in search_dirs if Path(d).is_dir() for p in Path(d).glob("*.toml")}
            )
            where = ", ".join(str(d) for d in search_dirs) or "no directories"
            hint = suggest(name_or_path, known) if known else ""
            raise ConfigError(name_or_path, None, None, f"no such profile in {where}{hint}")
        path = existing[0]
    return path


def load_profile(name_or_path: str, search_dirs: Sequence[Path]) -> dict[str, Any]:
    """Read a TOML site profile given by path or by name (``<name>.toml`` in ``search_dirs``)."""
    path = profile_path(name_or_path, search_dirs)
    text = read_text(path)
    try:
        profile: dict[str, Any] = tomllib.loads(text)
        return profile
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(m.group(1)) if m else None
        message = message[: m.start()].strip() if m else message
        raise ConfigError(str(path), None, line, f"invalid TOML: {message}") from None
