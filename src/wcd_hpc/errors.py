"""The one family of errors a user is meant to read: each is a single line, and nothing else is.

A sweep is started by a person at a terminal, often on a login node, and the two kinds of failure
they meet want opposite treatment. Bad input — a typo in an experiment file, an unknown plugin, a
corrupt HDF5 file, an unreachable database — is theirs to fix, and a traceback only hides the line
that says what to fix. A bug in our code (or in a plugin) is ours to fix, and the traceback is
exactly what the bug report needs. So the CLI catches :class:`WcdHpcError` and nothing else
(``wcd_hpc.cli.App``): its subclasses become ``error: <one line>`` and exit status
:attr:`WcdHpcError.exit_code`, every other exception keeps its traceback.

Input errors also derive from :class:`ValueError` (config, space, data), as they did before the
family existed, so code and plugins that catch ``ValueError`` keep working.

The subclasses say where a problem lies, and those with a location carry it (file, line, key), so
that an error reads ``broken.yaml:5: model: unknown model 'lenett'; did you mean 'lenet'?``.
:func:`one_line` is the single way we shorten any exception (ours or a library's) to one line,
for trial failure causes, log lines and wrapped errors.

No text of this module carries a secret: every message of the family, every :func:`one_line`
and every :func:`clip` goes through :func:`wcd_hpc.output.masking.mask_text` (a driver's or a
plugin's exception may quote a URL with its password). This module sits at the bottom of the
import layers, above only :mod:`wcd_hpc.output`: everything may import it.
"""

from __future__ import annotations

import re

from wcd_hpc.output.masking import mask_text

#: Longest excerpt of a user-supplied value echoed in an error: an error line must stay a line
#: even when the value is a 10 MB expression or a deeply nested structure.
MAX_ECHO = 120


class WcdHpcError(Exception):
    """Base of every error the CLI prints as one line (``str(exc)``) instead of a traceback.

    Its message is masked when the error is made, so no path that shows or stores it (the CLI,
    a trial's failure cause, a log line, a wrapping error) can show a secret.
    """

    #: Exit status of the CLI for this error: 2 for bad input (the usage convention), 1 for a
    #: failure found at run time (an unreachable MLflow server, a sweep that ended short).
    exit_code = 2

    def __init__(self, *args: object) -> None:
        super().__init__(*(mask_text(a) if isinstance(a, str) else a for a in args))


class UsageError(WcdHpcError):
    """A command used in a way it cannot work (a flag that makes no sense here)."""


class ConfigError(WcdHpcError, ValueError):
    """A setting that cannot be used, located as precisely as is known (file, line, key).

    ``file`` is the experiment or profile file, or the flag that gave the value (``--set``,
    ``--storage``), so that a mistake is blamed on where it was typed.
    """

    def __init__(self, file: str, key: str | None, line: int | None, message: str) -> None:
        self.file, self.key, self.line = file, key, line
        self.message = mask_text(message)
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class SpaceError(WcdHpcError, ValueError):
    """A search-space expression that cannot be used; ``key`` is the parameter it belongs to.

    It has no file of its own: :mod:`wcd_hpc.experiment.config` turns it into a
    :class:`ConfigError` at the line of the experiment file that wrote the expression.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, mask_text(message)
        super().__init__(f"{key}: {message}")


class DataError(WcdHpcError, ValueError):
    """Input data that cannot be used: a missing, truncated or malformed file, NaN in events.

    Deterministic: running the same trial again gives the same error, so a worker that meets one
    must not be restarted for it.
    """


class StorageError(WcdHpcError):
    """A study storage that cannot be used; the message names the masked URL and the cause."""


class StorageUnavailable(StorageError):
    """A storage that cannot be used now, through no fault of the command: a database or proxy
    outage, a journal whose filesystem is full or read-only.

    Not bad input and not a bug: the same command succeeds once the storage is back, so the
    exit status is 69 (``EX_UNAVAILABLE``), which a launcher tells apart from a crash (never
    restarted: a fresh worker would meet the same outage) and from bad input.

    ``trial`` is the number of a trial the outage caught half-claimed (created, its claim stamps
    not all written), so that its worker can leave it the same outage note as a trial it trained.
    """

    exit_code = 69
    trial: int | None = None


class StorageUnreachable(StorageUnavailable):
    """The storage stayed unreachable for the whole retry window (a database or proxy outage)."""


class StudyNotFound(StorageError):
    """No study of that name where it was looked for (the message lists the ones that exist).

    Exit status 1: the command was well formed and found out at run time that the study is not
    there, as ``grep`` does for a pattern it cannot find; 2 stays for input that cannot work.
    """

    exit_code = 1


class StudyConflict(StorageError):
    """``sweep`` was asked to resume a study whose stored experiment differs from the file."""


class PluginError(WcdHpcError):
    """A plugin that cannot be loaded or used, or a plugin distribution that cannot be made."""


class LaunchError(WcdHpcError):
    """Starting or following workers failed: a Slurm command, an executor not available here."""


class SlurmError(LaunchError):
    """A Slurm command failed; the message is one line with the command and its stderr."""


class SyncError(WcdHpcError):
    """Copying a study to MLflow failed; nothing half-written is left behind."""

    exit_code = 1


class SweepIncomplete(WcdHpcError):
    """A sweep that ran to its end with fewer finished trials than its budget."""

    exit_code = 1


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]\n]+)")
#: Longest one-line form of an exception (a library may put a whole HTML page in its message).
MAX_LINE = 300


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (or just the type): any exception, as one line.

    Our own errors are one line already and are shown without their type; a foreign exception
    keeps its type, which is often the most informative word in it (``OperationalError``). A
    network error wrapped in layers of HTTP-library exceptions is reduced to the operating
    system's own words (``Connection refused``). Secrets are masked before anything is cut.
    """
    text = mask_text(str(exc)).strip()
    errno = _ERRNO.search(text)
    if errno and not isinstance(exc, WcdHpcError):
        return clip(errno.group(1).strip(), MAX_LINE)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if isinstance(exc, WcdHpcError):
        return clip(first or type(exc).__name__, MAX_LINE)
    return clip(f"{type(exc).__name__}: {first}" if first else type(exc).__name__, MAX_LINE)


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text``, masked, cut to ``limit`` characters with a note of how much was left out.

    Masked first: a URL cut inside its password could no longer be recognised as one.
    """
    text = mask_text(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"
