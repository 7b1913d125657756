"""Storage URLs: what they mean, where they come from, and how a database driver gets one.

A study is addressed by one string that every worker can be given: ``journal:/abs/path.log`` for
Optuna's journal file on a shared filesystem, an SQLAlchemy URL (``sqlite:///…``,
``postgresql://…``), or ``grpc://HOST:PORT`` for Optuna's storage proxy in front of a database
(:mod:`wcd_hpc.store.proxy`; it carries no secret: the database password stays with the
proxy). A database URL may carry a password (in its user part, or a ``password`` query
parameter) and an MLflow tracking URI a token (``?token=``). Wherever wcd-hpc prints,
logs, renders or stores a URL it goes through :func:`mask` (or :func:`mask_text` for a whole
message), both from :mod:`wcd_hpc.output.masking`, so a password typed once never lands in a
terminal, a log, a script, the study or MLflow; every URL that enters here is remembered there,
so that its password is masked in any text, in any form.

How a URL is read: the userinfo runs to the *last* ``@`` before the host (the first ``/`` after
an ``@`` ends the authority), the user name to the first ``:``, and the password is the rest.
So a password may hold ``@``, ``:``, quotes, backslashes, spaces and non-ASCII as they are;
``%XX`` in it is a percent-escape (``%40`` is ``@``), so a literal ``%`` is written ``%25``, and
``/``, ``?`` and ``#`` must be written ``%2F``, ``%3F``, ``%23``. SQLAlchemy alone would end
the password at its *first* ``@`` and take the rest for the host, so :func:`for_driver`
re-encodes the user and password before a URL is handed to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from wcd_hpc.errors import ConfigError
from wcd_hpc.output.masking import MASK as MASK
from wcd_hpc.output.masking import MaskSecrets as MaskSecrets
from wcd_hpc.output.masking import has_secret as has_secret
from wcd_hpc.output.masking import is_secret_key as is_secret_key
from wcd_hpc.output.masking import mask as mask
from wcd_hpc.output.masking import mask_text as mask_text
from wcd_hpc.output.masking import remember, split_url
from wcd_hpc.output.masking import stored_text as stored_text
from wcd_hpc.output.masking import without_secrets as without_secrets
from wcd_hpc.store.schema import journal_path

ENV_STORAGE = "WCD_HPC_STORAGE"
#: Where a URL with a secret may wait in the environment: the storage, MLflow's tracking URI.
SECRET_VARIABLES = (ENV_STORAGE, "MLFLOW_TRACKING_URI")


def for_driver(url: str) -> str:
    """``url`` as SQLAlchemy must be given it: user and password percent-encoded.

    The password keeps exactly the meaning described above (``%XX`` escapes decoded, every
    other character as it is); only its spelling changes, so that SQLAlchemy, which ends the
    password at the first ``@``, finds the host where libpq would.
    """
    remember(url)
    parts = split_url(url)
    if parts is None:
        return url
    scheme, userinfo, host, query = parts
    if userinfo is None:
        return url
    user, colon, password = userinfo.partition(":")
    encoded = quote(unquote(user), safe="") + colon + quote(unquote(password), safe="")
    return f"{scheme}{encoded}@{host}{query}"


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
    sqlite paths become absolute because workers may start in another working directory, and a
    leading ``~`` is expanded (a directory named ``~`` is never what was meant).
    """
    remember(spec)
    if spec == "journal":
        return f"journal:{journal_path(run_dir).resolve()}"
    if spec.startswith("journal:"):
        return f"journal:{Path(spec.removeprefix('journal:')).expanduser().resolve()}"
    if spec.startswith("sqlite:///"):
        path = spec.removeprefix("sqlite:///")
        if path and not path.startswith("/"):
            return f"sqlite:///{Path(path).expanduser().resolve()}"
    return spec


def chosen(flag: str | None) -> tuple[str | None, str]:
    """The storage a command was given, and where it came from, by the one precedence rule.

    ``--storage`` wins over ``$WCD_HPC_STORAGE``, which wins over the experiment file (and the
    site profile); ``(None, "")`` leaves it to the file. Every command that opens or creates a
    study (``sweep``, ``render``, ``train``, ``status``, ``sync``, ``cancel``, ``retry``,
    ``worker``, ``evaluate``) applies this rule.
    """
    if flag:
        remember(flag)
        return flag, "--storage"
    env = os.environ.get(ENV_STORAGE)
    if env:
        remember(env)
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
