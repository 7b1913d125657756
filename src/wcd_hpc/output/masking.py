"""Secrets out of every text we show or keep: one masking function, applied at every exit.

A password typed once (in ``--storage``, ``$WCD_HPC_STORAGE``, an experiment file, an MLflow
tracking URI) must never reach a terminal, a log, a trial file, the study or MLflow, and it can
reach them by paths nobody wrote on purpose: a driver or a plugin that puts the URL into its
exception, a ``repr()`` of a mistyped URL in an error line, a traceback. So texts are masked where
they leave the process or are stored, not only where our code formats a URL:
:func:`mask_text` is that one function. ``wcd_hpc.errors.one_line`` and every
:class:`~wcd_hpc.errors.WcdHpcError` use it, :class:`MaskSecrets` applies it to log records
(tracebacks included), :class:`MaskedStream` to everything the ``wcd-hpc`` process writes to
stdout and stderr. What is *kept* (a trial's fail reason in the study, an outage note, a failed
trial's ``error.txt``, MLflow's params and tags) goes through :func:`stored_text`, the same
function under the name of where the text goes. A URL's password is dropped whole, not replaced
by a mask, as a rendered script does: a user name followed by a colon, a mask and the host is
still shaped like a URL with an inline password, and every scanner for leaked credentials (and
every reader) going through a log, a results folder or a CI transcript has to stop at it.

It works in two ways, because neither alone is enough:

- by structure: a URL's userinfo runs to the *last* ``@`` before its host, as libpq and
  SQLAlchemy read it, so a password that holds an ``@`` is hidden whole, not cut at its own
  ``@`` (the masking unit tests show the cases). In a free text the password may hold
  anything — quotes, backslashes (a ``repr()`` escapes them), spaces, ``%``, non-ASCII — so it is
  never cut at a quote: everything from the ``:`` after the user name to that last ``@`` goes.
  Query parameters and libpq ``key=value`` pairs named like secrets (:func:`is_secret_key`) go too;
- by value: each secret of a URL we parse is remembered (:func:`remember`), and every later
  occurrence of it, raw or in its percent-encoded, ``repr``-, JSON- or ASCII-escaped form, is
  masked wherever it appears, even far from any URL.

When in doubt it masks more, never less. This module sits below every other layer (the error
family itself uses it) and imports nothing of wcd-hpc.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from typing import Any, TextIO
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
#: A user name's colon, the mask and the at sign before a host: a shape never shown.
_MASKED_USERINFO = ":" + MASK + "@"
#: Query / conninfo parameters whose value is a secret (libpq's and common web-API names).
SECRET_KEYS = frozenset(
    {"password", "passwd", "pwd", "pass", "sslpassword", "token", "secret", "key", "apikey"}
)
#: A parameter whose name contains one of these is taken for a secret as well.
SECRET_WORDS = ("password", "secret", "token", "apikey", "api_key", "access_key", "credential")
#: ``name=value`` pairs masked in free text outside URLs (libpq conninfo, ODBC, log lines). Not
#: ``key``: a free text says ``KEY=VALUE`` to explain a syntax far more often than to hold one.
_FREE_TEXT_KEYS = [*sorted(SECRET_KEYS - {"key"}), "api_key", "access_key", "client_secret"]
#: Shorter remembered secrets are masked only by structure: masking every ``wcd`` in a text
#: would garble it.
MIN_REMEMBERED = 4

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEME_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://")
_FREE_TEXT_SECRET = re.compile(
    r"(?P<key>\b(?:" + "|".join(_FREE_TEXT_KEYS) + r"))\s*=\s*"
    r"(?P<value>'(?:\\.|[^'\\])*'?|\"(?:\\.|[^\"\\])*\"?|\S+)",
    re.IGNORECASE,
)
_NON_SPACE = re.compile(r"\S*")
_QUERY_PAIR = re.compile(r"(?P<lead>[?&;])(?P<key>[^=&#\s?]+)=(?P<value>[^&#\s]*)")

#: Every form of every secret seen, longest first (so a longer form is masked before its part).
_KNOWN: list[str] = []


def is_secret_key(name: str) -> bool:
    """Whether a parameter (query key, setting, tag) of this name holds a secret."""
    low = name.lower()
    return low in SECRET_KEYS or any(word in low for word in SECRET_WORDS)


def split_url(url: str) -> tuple[str, str | None, str, str] | None:
    """``(scheme://, userinfo or None, host + path, query-and-fragment)``; None if no URL.

    The userinfo ends at the last ``@`` before the first ``/`` that follows an ``@``: a raw ``@``
    inside a password belongs to the password, as libpq reads it.
    """
    head = _SCHEME.match(url)
    if head is None:
        return None
    rest = url[head.end() :]
    userinfo = None
    first_at = rest.find("@")
    if first_at >= 0:
        slash = rest.find("/", first_at)
        end = len(rest) if slash < 0 else slash
        at = rest.rfind("@", 0, end)
        userinfo, rest = rest[:at], rest[at + 1 :]
    query_at = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    return head.group(0), userinfo, rest[:query_at], rest[query_at:]


def _query_pairs(query: str) -> list[tuple[str, str, str]]:
    """``(key, "=" or "", value)`` of each ``&``-separated pair of ``?query``, as written."""
    body = query[1:].partition("#")[0] if query.startswith("?") else ""
    return [pair.partition("=") for pair in body.split("&") if pair]


def _mask_query(query: str, drop: bool) -> str:
    if not query.startswith("?"):
        return query
    body, hash_, fragment = query[1:].partition("#")
    kept = []
    for pair in body.split("&"):
        key, eq, _ = pair.partition("=")
        if eq and is_secret_key(key):
            if drop:
                continue
            pair = f"{key}={MASK}"
        kept.append(pair)
    joined = "&".join(kept)
    return (f"?{joined}" if joined else "") + (hash_ + fragment)


def secrets_of(url: str) -> list[str]:
    """The secrets a URL (or libpq conninfo) carries: its password and secret parameters."""
    parts = split_url(url)
    if parts is None:
        return [_unquoted(m["value"]) for m in _FREE_TEXT_SECRET.finditer(url)]
    _, userinfo, _, query = parts
    found = [userinfo.split(":", 1)[1]] if userinfo and ":" in userinfo else []
    found += [value for key, eq, value in _query_pairs(query) if eq and is_secret_key(key)]
    return [s for s in found if s and s != MASK]


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _forms(secret: str) -> set[str]:
    """How ``secret`` may be written in a text: raw, percent-encoded or decoded, escaped."""
    forms = set()
    for raw in {secret, unquote(secret)}:
        forms |= {raw, quote(raw, safe=""), quote_plus(raw), repr(raw)[1:-1], ascii(raw)[1:-1]}
        forms |= {json.dumps(raw)[1:-1], raw.encode("unicode_escape").decode("ascii")}
    return {f for f in forms if len(f) >= MIN_REMEMBERED}


def remember(url: str) -> None:
    """Mask the secrets of ``url`` in every later text, whatever surrounds them.

    Called wherever a URL enters the process (``--storage``, ``$WCD_HPC_STORAGE``, the
    experiment's ``storage``, a tracking URI) and by :func:`mask`.
    """
    new = set().union(*(_forms(s) for s in secrets_of(url))) - set(_KNOWN)
    if new:
        _KNOWN.extend(new)
        _KNOWN.sort(key=len, reverse=True)


def mask(url: str) -> str:
    """``url`` without its password and with any secret query parameter replaced by ``***``.

    Strings that are not URLs are returned with ``key=value`` secrets masked (libpq conninfo).
    """
    remember(url)
    parts = split_url(url)
    if parts is None:
        return _mask_free_text(url)
    scheme, userinfo, authority, query = parts
    return f"{scheme}{_user(userinfo)}{authority}{_mask_query(query, drop=False)}"


def _user(userinfo: str | None) -> str:
    """A URL's userinfo as shown and kept: the user name and its ``@``, never the password.

    Not even masked: a user name, a colon, a mask and the host still read as a URL with an
    inline password to every reader and every scanner for leaked credentials.
    """
    return "" if userinfo is None else userinfo.split(":", 1)[0] + "@"


def without_secrets(url: str) -> str:
    """``url`` with its password and secret parameters removed, not masked.

    What a rendered script holds: the workers take the password from ``$WCD_HPC_STORAGE`` (which
    sbatch exports) or from ``~/.pgpass``, never from a file others may read.
    """
    remember(url)
    parts = split_url(url)
    if parts is None:
        return _FREE_TEXT_SECRET.sub("", url).strip()
    scheme, userinfo, authority, query = parts
    return f"{scheme}{_user(userinfo)}{authority}{_mask_query(query, drop=True)}"


def has_secret(url: str) -> bool:
    return mask(url) != url


def _mask_free_text(text: str) -> str:
    return _FREE_TEXT_SECRET.sub(lambda m: f"{m['key']}={MASK}", text)


def _mask_url_at_start(segment: str) -> str:
    """``segment`` starts with a URL and runs to the next URL or the end of its line: mask the
    URL's password (up to its last ``@`` before the host), its secret query values, and any
    ``password=…`` in the text after it (the URL ends at the first space after its host)."""
    parts = split_url(segment)
    assert parts is not None
    scheme, userinfo, authority, rest = parts
    user = _user(userinfo)
    tail = authority + rest
    end = _NON_SPACE.match(tail)
    url, after = (tail[: end.end()], tail[end.end() :]) if end else ("", tail)

    def pair(m: re.Match[str]) -> str:
        secret = is_secret_key(m["key"])
        return f"{m['lead']}{m['key']}={MASK if secret else m['value']}"

    return scheme + user + _QUERY_PAIR.sub(pair, url) + _mask_free_text(after)


def _mask_line(line: str) -> str:
    starts = [m.start() for m in _SCHEME_IN_TEXT.finditer(line)]
    if not starts:
        return _mask_free_text(line)
    pieces = [_mask_free_text(line[: starts[0]])]
    for start, end in zip(starts, [*starts[1:], len(line)], strict=True):
        pieces.append(_mask_url_at_start(line[start:end]))
    return "".join(pieces)


def mask_text(text: str) -> str:
    """``text`` (an error message, a log line, a traceback) with every secret in it masked."""
    for form in _KNOWN:
        if form in text:
            text = text.replace(form, MASK)
    if "=" in text or "://" in text:
        text = "".join(_mask_line(line) for line in text.splitlines(keepends=True))
    # A remembered password masked by value where no URL was recognised (a driver that writes
    # the user, a colon, the password and the host without a scheme) leaves the same shape:
    # the user name stays, the colon and the mask go.
    return text.replace(_MASKED_USERINFO, "@")


def stored_text(text: str) -> str:
    """``text`` as it may be kept (a fail reason, an outage note, MLflow's tags).

    The same as the terminal shows since both drop a URL's password whole: a URL with user
    ``wcd`` and a password reads ``postgresql://wcd@db/x`` everywhere (the form
    :func:`without_secrets` gives); secrets outside URL userinfo stay ``***``. The name says
    where a text goes, so that a caller keeping one does not have to know that.
    """
    return mask_text(text)


def masked_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` as Python prints it, as it may be kept (a failed trial's
    ``error.txt``)."""
    return stored_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


class MaskSecrets(logging.Filter):
    """A logging filter that masks every secret in a record's message and traceback.

    The CLI installs it on its log handler, so a secret that reaches a log line by any path (an
    exception from a driver that quotes its connection string, a plugin's own logging) is
    masked there too, not only where our code remembered to call :func:`mask`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


class MaskedStream:
    """A text stream that masks what is written to it before passing it on.

    The ``wcd-hpc`` process puts one in front of stdout and stderr, so that whatever prints —
    rich, click's usage errors, Python's own traceback of a bug, a plugin — prints masked.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @property
    def target(self) -> TextIO:
        return self._stream

    def write(self, text: str) -> int:
        self._stream.write(mask_text(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def mask_standard_streams(*variables: str) -> None:
    """Put a :class:`MaskedStream` in front of ``sys.stdout`` and ``sys.stderr`` (once), and
    :func:`remember` the URLs in the environment ``variables`` (a plugin may print one's
    password before any command has read it)."""
    for variable in variables:
        remember(os.environ.get(variable, ""))
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskedStream):
            setattr(sys, name, MaskedStream(stream))
