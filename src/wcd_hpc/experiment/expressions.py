"""Reading search-space text: a constant, or an expression tree for :mod:`.space` to interpret.

An experiment file writes constants and expressions in the same place (``optimizer: adam``,
``lr: loguniform(1e-4, 1e-2)``), so a text must be sorted into one or the other before anything
is interpreted. The sorting errs towards refusing: a mistyped expression taken as a constant
string is accepted silently and then fails in every trial, on a compute node, hours later, while
a refused text costs one edit. The rule (:func:`read`):

- a number in any Python literal form, a quoted string, ``None``, ``True`` or ``False`` is that
  value, and a call, list or tuple is an expression, left to :mod:`.space`;
- plain words are the text as written, even where Python would read them as arithmetic on names
  (``adam``, ``relu6``, ``sgd-momentum``, ``resnet-50``) or not at all (``1cycle``, ``hello
  world``), so settings need no quoting;
- anything else was meant as an expression that is not ours, and is refused: a text with a
  subscript (``loguniform[1e-4, 1e-2]``), brackets, braces or parentheses around anything but a
  literal, arithmetic on numbers (``1e-4 - 1e-2``) or on calls (``randint(1, 10) + 1``), a syntax
  error in a text with brackets or made of numbers only, and an empty text.

A constant is also refused when it is a quoted string that reads as an expression
(:func:`check_constant`): ``['randint(4, 12)', 6]`` or ``choice(['randint(1, 2)'])``. YAML makes
quoting habitual, and Python would take the quoted text for a string constant that every trial
then receives as a string, failing at run time; said once here, it costs one edit.

A text is also hostile input from a file or a ``--set`` flag, and reading it must fail with one
line, never a traceback: it is refused above :data:`MAX_EXPRESSION` characters before
:func:`ast.parse` sees it, the parser's own ``RecursionError``/``MemoryError`` become a
:class:`SpaceError`, and a tree deeper than :data:`MAX_DEPTH` is refused before anything recurses
over it (the interpretation in :mod:`.space`, :func:`ast.unparse` in error messages).
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import TypeAlias

from wcd_hpc.errors import SpaceError, clip

__all__ = [
    "ECHO",
    "EXAMPLE",
    "KNOWN_FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPRESSION",
    "MAX_NUMBER",
    "Literal",
    "bound",
    "check_constant",
    "check_number",
    "echo",
    "literal",
    "literal_number",
    "number_text",
    "options_of",
    "read",
    "shown",
]

Number: TypeAlias = int | float
Scalar: TypeAlias = int | float | str | bool | None

KNOWN_FUNCTIONS: tuple[str, ...] = ("choice", "loguniform", "randint", "range", "uniform")
EXAMPLE = "an expression like loguniform(1e-4, 1e-2), randint(2, 20) or choice(['adam', 'sgd'])"

#: Longest text read as an expression or constant. The longest real ones (a ``choice`` of a few
#: dozen options, a list of per-layer ranges) are a few hundred characters; a longer text is a
#: pasting accident or an attack, and Python's parser needs memory and C stack in proportion.
MAX_EXPRESSION = 10_000
#: Deepest nesting of an expression tree (and of lists in a search space): real ones are about 5
#: levels deep (a list of calls of lists of numbers); everything that walks a tree recursively
#: stays far inside Python's recursion limit below this.
MAX_DEPTH = 32
#: Longest excerpt of a text echoed in an error: shorter than :data:`~wcd_hpc.errors.MAX_ECHO`,
#: as these messages also spell out what was expected, and must stay one line of ~300 characters.
ECHO = 60
#: Largest magnitude of a number: Optuna's samplers and the midpoint of ``wcd-hpc train`` compute
#: with the difference and the sum of a distribution's bounds, which overflow to ``inf`` (or raise
#: ``OverflowError``) near the float limit of 1.8e308; no hyper-parameter comes anywhere near.
MAX_NUMBER = 1e300

#: Why a fragment such as ``randint(2`` is most likely there: YAML, and so every tool that loads
#: and dumps YAML, splits an unquoted flow list ``[randint(2, 20), randint(2, 20)]`` at each comma.
SPLIT_HINT = (
    "a list such as [randint(2, 20), randint(2, 20)] was split at its commas, as YAML tools do; "
    'quote the whole list: "[randint(2, 20), randint(2, 20)]"'
)

#: Expression trees that :mod:`.space` interprets itself.
_STRUCTURES = (ast.Call, ast.List, ast.Tuple, ast.Dict, ast.Set)
#: What a plain word (``sgd-momentum``, ``torch.optim.Adam``, ``not-a-number``) may parse into.
_WORD_PARTS = (
    ast.Name,
    ast.Attribute,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.expr_context,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)
_OPERATIONS = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare)
_BRACKETS = frozenset("()[]{}")
#: Numbers and arithmetic only: a syntax error in such a text (``1e-4 -``, a number too long for
#: Python to read) is a broken number, never a word.
_NUMERIC = re.compile(r"(?=.*\d)(?:[\d\s._+\-*/%]|(?<=\d)[eE])+")


@dataclass(frozen=True)
class Literal:
    """A text that is a constant: a Python literal's value, or a plain word as written."""

    value: Scalar


def read(key: str, value: str) -> ast.expr | Literal:
    """Sort ``value`` into a constant or an expression tree (rule in the module docstring).

    Raises :class:`SpaceError` naming ``key`` for text that was meant as an expression but is
    not one of ours, and for text too long or too deeply nested to read.
    """
    text = value.strip()
    if not text:
        raise SpaceError(key, f"empty expression; expected {EXAMPLE}, a constant or a list")
    if len(text) > MAX_EXPRESSION:
        raise SpaceError(
            key,
            f"text of {len(text)} characters; expressions and constants are limited to "
            f"{MAX_EXPRESSION}: {echo(text)}",
        )
    if "\0" in text:
        raise SpaceError(key, f"text contains a NUL character: {echo(text)}")
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError) as exc:
        if not (_BRACKETS & set(text) or _NUMERIC.fullmatch(text)):
            return Literal(value)
        msg = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        if msg.startswith("Exceeds the limit"):
            msg = "a number of over 4300 digits"
        offset = exc.offset if isinstance(exc, SyntaxError) else None
        where = f" at column {offset}" if offset else ""
        expected = SPLIT_HINT if _split_item(key, text) else f"expected {EXAMPLE}"
        raise SpaceError(
            key, f"syntax error{where} in {echo(text)}: {clip(msg, 60)}; {expected}"
        ) from None
    except (RecursionError, MemoryError):
        raise SpaceError(key, f"expression too deeply nested to read: {echo(text)}") from None
    _check_depth(key, node, text)
    if isinstance(node, _STRUCTURES):
        return node
    constant = literal(node)
    if constant is not None:
        return constant
    if _is_word(node) and not _BRACKETS & set(text):
        return Literal(value)
    raise SpaceError(key, _not_ours(node, text))


def _split_item(key: str, text: str) -> bool:
    """Whether a list item looks like a piece of a call cut at a comma (``randint(2``, ``20)``)."""
    return key.endswith("]") and "," not in text and text.count("(") != text.count(")")


def _check_depth(key: str, root: ast.expr, text: str) -> None:
    """Refuse a tree deeper than :data:`MAX_DEPTH`, without recursing over it."""
    todo: list[tuple[ast.AST, int]] = [(root, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise SpaceError(
                key, f"expression nested more than {MAX_DEPTH} levels deep: {echo(text)}"
            )
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _is_word(node: ast.expr) -> bool:
    """Names joined by operators, as in ``sgd-momentum``: words, with at least one name."""
    parts = list(ast.walk(node))
    return all(isinstance(p, _WORD_PARTS) for p in parts) and any(
        isinstance(p, ast.Name) for p in parts
    )


def _not_ours(node: ast.expr, text: str) -> str:
    """Why a parsed text that is neither a constant nor one of our expressions is refused."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        name = node.value.id
        if name in KNOWN_FUNCTIONS:
            hint = f"takes its arguments in parentheses, e.g. {name}(…)"
            return f"{name}() {hint}, got {echo(text)}"
    if isinstance(node, _OPERATIONS):
        return f"arithmetic is not supported; expected a number or {EXAMPLE}, got {echo(text)}"
    return f"expected {EXAMPLE}, a constant or a list, got {echo(text)}"


def literal_number(node: ast.expr) -> Number | None:
    """The value of a numeric literal, with an optional sign; ``None`` for anything else."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return sign * node.value
    return None


def literal(node: ast.expr) -> Literal | None:
    """A number, quoted string, ``True``, ``False`` or ``None`` written as a Python literal."""
    number = literal_number(node)
    if number is not None:
        return Literal(number)
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, (str, bool))
    ):
        return Literal(node.value)
    return None


def echo(text: str) -> str:
    """``text`` quoted for an error message, cut to :data:`ECHO` characters."""
    return repr(clip(text, ECHO))


def shown(node: ast.AST) -> str:
    """``node`` as source text for an error message, cut to :data:`ECHO` characters.

    Safe to call on any tree :func:`read` returned: its depth is bounded.
    """
    return echo(ast.unparse(node))


def check_number(key: str, value: Scalar) -> Scalar:
    """A constant number must be finite and, like a bound, within ±:data:`MAX_NUMBER`."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SpaceError(key, f"expected a finite number, got {value!r}")
    if isinstance(value, (int, float)) and abs(value) > MAX_NUMBER:
        raise SpaceError(key, f"expected a number within ±{MAX_NUMBER:g}, got {number_text(value)}")
    return value


def check_constant(key: str, value: Scalar) -> Scalar:
    """A constant as :func:`check_number` checks it, and never a quoted search expression.

    A string constant written like one of our expressions (a call such as ``'randint(4, 12)'``,
    or a list) is a quoting mistake: taken as written, every trial would receive that text
    instead of a sampled value and fail at run time.
    """
    if isinstance(value, str) and _reads_as_expression(value):
        raise SpaceError(
            key,
            f"the quoted string {echo(value)} is a search expression, not a constant; "
            "write the expression without quotes",
        )
    return check_number(key, value)


def _reads_as_expression(value: str) -> bool:
    """Whether ``value`` without its quotes is a call of a name, a list or a tuple."""
    text = value.strip()
    if not _BRACKETS & set(text) or len(text) > MAX_EXPRESSION or "\0" in text:
        return False
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name)
    return isinstance(node, (ast.List, ast.Tuple))


def number_text(value: Scalar) -> str:
    """``repr(value)`` cut short; Python refuses to write an int of over 4300 digits at all."""
    if isinstance(value, int) and value.bit_length() > 14_000:
        return f"an integer of {value.bit_length()} bits"
    return clip(repr(value), ECHO)


def bound(key: str, func: str, node: ast.expr) -> Number:
    """A distribution's bound: a finite number literal within ±:data:`MAX_NUMBER`."""
    number = literal_number(node)
    if number is None:
        raise SpaceError(key, f"{func}() bounds must be numbers, got {shown(node)}")
    if isinstance(number, float) and not math.isfinite(number):  # an int may exceed any float
        raise SpaceError(key, f"{func}() bounds must be finite, got {number!r}")
    if abs(number) > MAX_NUMBER:
        raise SpaceError(
            key, f"{func}() bounds must lie within ±{MAX_NUMBER:g}, got {number_text(number)}"
        )
    return number


def options_of(key: str, items: list[ast.expr]) -> list[Scalar]:
    """The options of ``choice([...])``: literals only, each checked like a constant."""
    options: list[Scalar] = []
    for item in items:
        constant = literal(item)
        if constant is None:
            raise SpaceError(
                key,
                "choice() options must be numbers, quoted strings, booleans or None, "
                f"got {shown(item)}",
            )
        options.append(check_constant(key, constant.value))
    return options
