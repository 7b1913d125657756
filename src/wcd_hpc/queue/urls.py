"""Storage URLs: what they mean, where they come from, and how to show one without its secrets.

A study is addressed by one string that every worker can be given: ``journal:/abs/path.log`` for
Optuna's journal file on a shared filesystem, an SQLAlchemy URL (``sqlite:///…``,
``postgresql://…``), or ``grpc://HOST:PORT`` for Optuna's storage proxy in front of a database
(:mod:`wcd_hpc.queue.proxy`; it carries no secret: the database password stays with the
proxy). A database URL may carry a password (in its user part, or a ``password`` query
parameter) and an MLflow tracking URI a token (``?token=``). Wherever wcd-hpc prints,
logs, renders or stores a URL it goes through :func:`mask` (or :func:`mask_text` for a whole
message), so a password typed once never lands in a terminal, a log, a script, the study or
MLflow.

Masking has to follow how the URL will really be parsed, not how it looks: libpq and SQLAlchemy
take the userinfo up to the *last* ``@`` of the authority, so in ``wcd:p@ss@host`` the password is
``p@ss``; a pattern that stops at the first ``@`` would print ``ss@host``. Query parameters named
like secrets (:data:`SECRET_KEYS`, or any name containing one of :data:`SECRET_WORDS`) are masked
too. When in doubt it masks more, never less.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wcd_hpc.errors import ConfigError
from wcd_hpc.queue.schema import journal_path

ENV_STORAGE = "WCD_HPC_STORAGE"
MASK = "***"
#: Query / conninfo parameters whose value is a secret (libpq's and common web-API names).
SECRET_KEYS = frozenset(
    {"password", "passwd", "pwd", "pass", "sslpassword", "token", "secret", "key", "apikey"}
)
#: A parameter whose name contains one of these is taken for a secret as well.
SECRET_WORDS = ("password", "secret", "token", "apikey", "api_key", "access_key", "credential")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_CONNINFO_SECRET = re.compile(
    r"(?P<key>\b(?:" + "|".join(sorted(SECRET_KEYS)) + r"))\s*=\s*(?P<value>'(?:\\.|[^'])*'|\S+)",
    re.IGNORECASE,
)

# One pass over a message: a URL is masked as a whole, a conninfo ``password=…`` outside URLs.
_SECRETS_IN_TEXT = re.compile(f"(?P<url>{_URL_IN_TEXT.pattern})|{_CONNINFO_SECRET.pattern}", re.I)


def is_secret_key(name: str) -> bool:
    """Whether a parameter (query key, setting, tag) of this name holds a secret."""
    low = name.lower()
    return low in SECRET_KEYS or any(word in low for word in SECRET_WORDS)


def _split(url: str) -> tuple[str, str | None, str, str] | None:
    """``(scheme://, userinfo or None, rest of authority + path, query-and-fragment)``, or
    None for a string that is not a URL."""
    head = _SCHEME.match(url)
    if head is None:
        return None
    rest = url[head.end() :]
    userinfo = None
    first_at = rest.find("@")
    if first_at >= 0:
        # The authority ends at the first '/' after the userinfo began; the userinfo ends at the
        # last '@' before that (a raw '@' inside a password belongs to the password).
        slash = rest.find("/", first_at)
        end = len(rest) if slash < 0 else slash
        at = rest.rfind("@", 0, end)
        userinfo, rest = rest[:at], rest[at + 1 :]
    query_at = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    return head.group(0), userinfo, rest[:query_at], rest[query_at:]


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


def mask(url: str) -> str:
    """``url`` with its password and any secret query parameter replaced by ``***``.

    Strings that are not URLs are returned with ``key=value`` secrets masked (libpq conninfo).
    """
    parts = _split(url)
    if parts is None:
        return _CONNINFO_SECRET.sub(lambda m: f"{m['key']}={MASK}", url)
    scheme, userinfo, authority, query = parts
    if userinfo is not None and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + MASK
    user = "" if userinfo is None else f"{userinfo}@"
    return f"{scheme}{user}{authority}{_mask_query(query, drop=False)}"


def without_secrets(url: str) -> str:
    """``url`` with its password and secret parameters removed, not masked.

    What a rendered script holds: the workers take the password from ``$WCD_HPC_STORAGE`` (which
    sbatch exports) or from ``~/.pgpass``, never from a file others may read.
    """
    parts = _split(url)
    if parts is None:
        return _CONNINFO_SECRET.sub("", url).strip()
    scheme, userinfo, authority, query = parts
    user = "" if userinfo is None else userinfo.split(":", 1)[0] + "@"
    return f"{scheme}{user}{authority}{_mask_query(query, drop=True)}"


def mask_text(text: str) -> str:
    """Every URL inside ``text`` (an error message, a log line) passed through :func:`mask`."""

    def one(m: re.Match[str]) -> str:
        return mask(m.group(0)) if m.group("url") else f"{m['key']}={MASK}"

    return _SECRETS_IN_TEXT.sub(one, text)


class MaskSecrets(logging.Filter):
    """A logging filter that masks every URL and ``password=`` in a record's message.

    The CLI installs it on its log handler, so a secret that reaches a log line by any path (an
    exception from a driver that quotes its connection string, a plugin's own logging) is
    masked there too, not only where our code remembered to call :func:`mask`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def has_secret(url: str) -> bool:
    return mask(url) != url


def kind(url: str) -> str:
    """The storage family: ``journal``, ``sqlite``, ``postgresql``, ``mysql``, ``grpc`` (Optuna's
    storage proxy, served by ``wcd-hpc storage serve``) or ``other``."""
    if url.startswith("journal:"):
        return "journal"
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    return scheme if scheme in ("sqlite", "postgresql", "mysql", "grpc") else "other"


def journal_file(url: str) -> Path:
    """The file of a ``journal:PATH`` URL."""
    return Path(url.removeprefix("journal:"))


def resolve(spec: str, run_dir: Path) -> str:
    """Turn an experiment's ``storage`` value into a URL every worker can open.

    ``journal`` means the journal file inside the study's run directory; relative journal and
    sqlite paths become absolute because workers may start in another working directory.
    """
    if spec == "journal":
        return f"journal:{journal_path(run_dir).resolve()}"
    if spec.startswith("journal:"):
        return f"journal:{Path(spec.removeprefix('journal:')).expanduser().resolve()}"
    if spec.startswith("sqlite:///"):
        path = spec.removeprefix("sqlite:///")
        if path and not path.startswith("/"):
            return f"sqlite:///{Path(path).resolve()}"
    return spec


def chosen(flag: str | None) -> tuple[str | None, str]:
    """The storage a command was given, and where it came from, by the one precedence rule.

    ``--storage`` wins over ``$WCD_HPC_STORAGE``, which wins over the experiment file (and the
    site profile); ``(None, "")`` leaves it to the file. Every command that opens or creates a
    study (``sweep``, ``render``, ``train``, ``status``, ``sync``, ``cancel``, ``retry``,
    ``worker``, ``evaluate``) applies this rule.
    """
    if flag:
        return flag, "--storage"
    env = os.environ.get(ENV_STORAGE)
    if env:
        return env, f"${ENV_STORAGE}"
    return None, ""


def with_chosen_storage(
    flags: Mapping[str, tuple[str, Any]] | None,
) -> dict[str, tuple[str, Any]]:
    """Command-line ``flags`` (key -> (flag, value)) with ``storage`` set by :func:`chosen`.

    What ``sweep``, ``render`` and ``train`` pass on to ``load_experiment``.
    """
    given = dict(flags or {})
    _, flag = given.pop("storage", ("--storage", None))
    url, origin = chosen(flag)
    if url is not None:
        given["storage"] = (origin, url)
    return given


def from_env(value: str | None) -> str:
    """The storage URL given on the command line, else ``$WCD_HPC_STORAGE`` (workers)."""
    url, _ = chosen(value)
    if not url:
        raise ConfigError(
            "--storage", None, None, f"no storage given: pass --storage URL or set {ENV_STORAGE}"
        )
    return url
