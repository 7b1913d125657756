"""Cluster settings from a site profile: the ``[slurm]`` and ``[container]`` tables.

They are validated here, before anything is submitted, and every value that may reach an
``#SBATCH`` line is restricted to characters Slurm itself accepts there, so a profile can never
inject a directive or a shell command.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import validate_profile
from wcd_hpc.experiment.sources import load_profile, profile_path

_NAME = re.compile(r"^[A-Za-z0-9_.,:=+@%-]+$")
RUNTIMES = ("apptainer", "singularity")
DEFAULT_GRACE_S = 120
#: The site profiles installed with the package (dev, local, the university template), next to
#: the sbatch templates; ``slurm/profiles`` in a checkout links here.
SHIPPED_PROFILES = Path(__file__).resolve().parent / "profiles"


def _doc(default: Any, doc: str) -> Any:
    """A field whose ``doc`` the generated profile reference shows (docs/reference/profile.md)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class SlurmSettings:
    """What goes into ``#SBATCH`` lines besides resources (which come from the experiment).

    The fields are the keys of a profile's ``[slurm]`` table, with their defaults.
    """

    partition: str | None = _doc(None, "`--partition`: the GPU partition (`sinfo -s` lists them).")
    account: str | None = _doc(
        None, "`--account`: the project charged (`sacctmgr show assoc user=$USER`)."
    )
    qos: str | None = _doc(None, "`--qos`: the quality of service, where the site uses one.")
    constraint: str | None = _doc(
        None,
        '`--constraint`: node features in Slurm\'s grammar, e.g. `"a100"`, `"a100&ib"`, '
        '`"[rack1|rack2]"` (`sinfo -o "%N %f"`).',
    )
    gres: str = _doc(
        "gpu:{gpus}",
        "`--gres`, with `{gpus}` replaced by `resources.gpus`; some sites want a type: "
        '`"gpu:a100:{gpus}"`.',
    )
    array_parallelism: int | None = _doc(
        None, "At most this many array tasks at once (`--array=0-N%P`); default: no limit."
    )
    grace_s: int = _doc(
        DEFAULT_GRACE_S,
        "Seconds before the time limit at which Slurm sends SIGUSR2 (`--signal=USR2@grace_s`): "
        "workers checkpoint, requeue and stop.",
    )
    setup: tuple[str, ...] = _doc(
        (), 'Shell lines run before the worker, e.g. `["module load apptainer"]`.'
    )
    extra: tuple[tuple[str, str], ...] = _doc(
        (), 'Any other sbatch options, as a table `name = value` (e.g. `mail-type = "END"`).'
    )

    def gres_for(self, gpus: int) -> str | None:
        return self.gres.format(gpus=gpus) if gpus > 0 else None


@dataclass(frozen=True)
class ContainerSettings:
    """The image every worker runs in; ``image=None`` runs workers directly on the node.

    The fields are the keys of a profile's ``[container]`` table, with their defaults.
    """

    runtime: str = _doc("apptainer", "`apptainer` or `singularity`.")
    image: str | None = _doc(
        None,
        "Path of the `.sif` image workers run in (`apptainer build wcd-hpc.sif Apptainer.def`); "
        "none: workers run on the node directly.",
    )
    binds: tuple[str, ...] = _doc(
        (), 'Directories bound into the container besides the runs root, e.g. `["/scratch"]`.'
    )
    gpu_flag: bool = _doc(True, "Pass `--nv` (the GPUs) to the container runtime.")


@dataclass(frozen=True)
class Site:
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    container: ContainerSettings = field(default_factory=ContainerSettings)
    source: str = "<defaults>"


def _err(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(source, key, None, message)


def _opt_name(table: Mapping[str, Any], key: str, source: str, prefix: str) -> str | None:
    value = table.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise _err(
            source,
            f"{prefix}.{key}",
            f"expected a Slurm name (letters, digits, _.,:=+@%-), got {value!r}",
        )
    return value


#: One token of Slurm's ``--constraint`` grammar: a feature (with an optional node count
#: ``*N``), an operator (``&`` and, ``|`` or), or a bracket (``[…]`` matching or, ``(…)``
#: grouping). See ``man sbatch``, ``--constraint``.
_CONSTRAINT_TOKEN = re.compile(r"([A-Za-z0-9_.:=+@%-]+(?:\*\d+)?)|([&|])|([\[\]()])")


def _constraint_problem(text: str) -> str | None:
    """Why ``text`` is not a Slurm constraint expression, or ``None`` when it is one."""
    stack: list[str] = []
    want_operand = True  # an operand (a feature or an opening bracket) comes next
    pos = 0
    while pos < len(text):  # no blanks: an #SBATCH line splits at them
        match = _CONSTRAINT_TOKEN.match(text, pos)
        if match is None:
            return f"unexpected {text[pos]!r} at column {pos + 1}"
        feature, operator, bracket = match.groups()
        pos = match.end()
        if feature is not None or bracket in ("[", "("):
            if not want_operand:
                return f"an operator (& or |) is missing before column {match.start() + 1}"
            if bracket:
                stack.append(bracket)
            else:
                want_operand = False
        elif operator is not None:
            if want_operand:
                return f"{operator!r} at column {pos} has nothing before it"
            want_operand = True
        else:  # a closing bracket
            opening = {"]": "[", ")": "("}[str(bracket)]
            if want_operand or not stack or stack.pop() != opening:
                return f"unbalanced or empty {bracket!r} at column {pos}"
    if want_operand or stack:
        return "it ends before an operand" if want_operand else f"{stack[-1]!r} is not closed"
    return None


def _constraint(table: Mapping[str, Any], source: str) -> str | None:
    """``slurm.constraint``: node features in Slurm's grammar (``a100``, ``a&b|c``,
    ``[rack1|rack2]``, ``(a|b)&c``, ``knl*2``), checked here rather than refused by sbatch."""
    value = table.get("constraint")
    if value in (None, ""):
        return None
    problem = _constraint_problem(value) if isinstance(value, str) else "not a string"
    if problem is not None:
        raise _err(
            source,
            "slurm.constraint",
            "expected node features joined by & (and) and | (or), with [ ] or ( ) around "
            f"groups, e.g. 'a100&ib' or '[rack1|rack2]'; {problem}, got {value!r}",
        )
    return str(value)


def _int(table: Mapping[str, Any], key: str, source: str, prefix: str, default: int | None) -> Any:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _err(source, f"{prefix}.{key}", f"expected a positive integer, got {value!r}")
    return value


def _strings(table: Mapping[str, Any], key: str, source: str, prefix: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and "\n" not in v for v in value):
        raise _err(source, f"{prefix}.{key}", "expected a list of one-line strings")
    return tuple(value)


def parse_site(profile: Mapping[str, Any] | None, source: str = "<profile>") -> Site:
    """Validate the ``[slurm]`` and ``[container]`` tables of a loaded site profile."""
    profile = profile or {}
    known = {"slurm", "container"}
    raw_slurm = profile.get("slurm", {})
    raw_container = profile.get("container", {})
    for key, table in (("slurm", raw_slurm), ("container", raw_container)):
        if not isinstance(table, Mapping):
            raise _err(source, key, f"expected a table [{key}], got {table!r}")
    del known
    unknown_s = set(raw_slurm) - {f.name for f in fields(SlurmSettings)}
    unknown_c = set(raw_container) - {f.name for f in fields(ContainerSettings)}
    if unknown_s or unknown_c:
        key = f"slurm.{sorted(unknown_s)[0]}" if unknown_s else f"container.{sorted(unknown_c)[0]}"
        raise _err(source, key, "unknown key")
    gres = raw_slurm.get("gres", "gpu:{gpus}")
    if not isinstance(gres, str) or not _NAME.match(gres.replace("{gpus}", "1")):
        raise _err(source, "slurm.gres", f"expected a gres like 'gpu:{{gpus}}', got {gres!r}")
    extra = raw_slurm.get("extra", {})
    if not isinstance(extra, Mapping) or not all(
        re.match(r"^[a-z][a-z-]*$", str(k)) and _NAME.match(str(v)) for k, v in extra.items()
    ):
        raise _err(source, "slurm.extra", "expected a table of sbatch options (name = value)")
    slurm = SlurmSettings(
        partition=_opt_name(raw_slurm, "partition", source, "slurm"),
        account=_opt_name(raw_slurm, "account", source, "slurm"),
        qos=_opt_name(raw_slurm, "qos", source, "slurm"),
        constraint=_constraint(raw_slurm, source),
        gres=gres,
        array_parallelism=_int(raw_slurm, "array_parallelism", source, "slurm", None),
        grace_s=_int(raw_slurm, "grace_s", source, "slurm", DEFAULT_GRACE_S),
        setup=_strings(raw_slurm, "setup", source, "slurm"),
        extra=tuple((str(k), str(v)) for k, v in extra.items()),
    )
    runtime = raw_container.get("runtime", "apptainer")
    if runtime not in RUNTIMES:
        raise _err(
            source, "container.runtime", f"expected one of {', '.join(RUNTIMES)}, got {runtime!r}"
        )
    image = raw_container.get("image") or None
    if image is not None and (not isinstance(image, str) or "\n" in image):
        raise _err(source, "container.image", f"expected a path to a .sif image, got {image!r}")
    container = ContainerSettings(
        runtime=runtime,
        image=image,
        binds=_strings(raw_container, "binds", source, "container"),
        gpu_flag=bool(raw_container.get("gpu_flag", True)),
    )
    return Site(slurm, container, source)


#: The profiles of the project in the working directory (a checkout of wcd-hpc, or the user's).
PROJECT_PROFILES = Path("slurm/profiles")
#: The site profile used when a command is given no ``--profile``.
ENV_PROFILE = "WCD_HPC_PROFILE"


def profile_dirs() -> list[Path]:
    """Where named site profiles are looked up, first match wins: the project's slurm/profiles,
    the user's, then the ones shipped with wcd-hpc (dev, local and the university template), so
    that ``--profile university`` and ``wcd-hpc profiles`` work from any directory."""
    dirs = [Path.cwd() / PROJECT_PROFILES]
    config = os.environ.get("XDG_CONFIG_HOME", str(Path.home() / ".config"))
    dirs.append(Path(config) / "wcd-hpc" / "profiles")
    dirs.append(SHIPPED_PROFILES)
    return dirs


def site_profile(name: str | None) -> dict[str, Any] | None:
    """The profile named by ``--profile`` (a name or a path), else ``$WCD_HPC_PROFILE``.

    Checked whole, as ``wcd-hpc profiles`` checks it: a key no profile takes (``runs_dri``) or
    a bad ``[slurm]`` value is refused here, never dropped silently.
    """
    chosen = name or os.environ.get(ENV_PROFILE)
    if not chosen:
        return None
    path = profile_path(chosen, profile_dirs())
    profile = load_profile(str(path), [])
    validate_profile(profile, str(path))
    parse_site(profile, str(path))
    return profile
