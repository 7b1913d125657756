"""``wcd-hpc doctor``: is this machine ready to run sweeps, and if not, what to fix.

Each check returns one line that says what was found and, on failure, what to do about it; the
checks never change anything (the storage check only opens a connection or reads a path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wcd_hpc.errors import StorageError
from wcd_hpc.launch.filesystems import filesystem_verdict
from wcd_hpc.launch.settings import Site
from wcd_hpc.output.files import size_text
from wcd_hpc.store.storage import Storage, open_storage
from wcd_hpc.store.urls import kind, mask

#: Below this much free space under the runs directory a sweep cannot be expected to finish
#: (checkpoints, final weights, plots, a journal, a simulated data set of a few hundred MB).
MIN_FREE = 2**30
#: Below this much a long sweep, or a large simulated data set, may fill it: a warning.
LOW_FREE = 10 * 2**30


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _tool(name: str, fix: str, required: bool) -> Check:
    path = shutil.which(name)
    if path:
        return Check(name, True, path, required=required)
    return Check(name, False, "not on PATH", fix, required)


def check_slurm(required: bool) -> list[Check]:
    checks = [
        _tool(
            "sbatch",
            "load the Slurm module or run on a login node; or use --executor local",
            required,
        ),
        _tool("sacct", "accounting is needed for status accounting; ask your admins", False),
    ]
    if shutil.which("sinfo"):
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%P %a %D %t"], capture_output=True, text=True, timeout=30
        )
        ok = proc.returncode == 0 and bool(proc.stdout.strip())
        detail = "; ".join(proc.stdout.split("\n")[:3]).strip() if ok else proc.stderr.strip()[:200]
        checks.append(
            Check(
                "slurm partitions",
                ok,
                detail or "no answer",
                "is slurmctld reachable? (scontrol ping)",
                required,
            )
        )
    return checks


def check_container(site: Site) -> list[Check]:
    c = site.container
    if c.image is None:
        return [
            Check(
                "container",
                True,
                "no image configured: workers run on the host python",
                required=False,
            )
        ]
    checks = [_tool(c.runtime, f"module load {c.runtime} (or set container.runtime)", True)]
    image = Path(c.image)
    checks.append(
        Check(
            "image",
            image.is_file(),
            str(image) if image.is_file() else f"{image} not found",
            f"build it: {c.runtime} build {image} Apptainer.def",
        )
    )
    return checks


def check_gpus() -> Check:
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception as exc:  # a broken CUDA install must still give a line, not a traceback
        return Check(
            "gpus", False, f"torch cannot query CUDA: {exc}", "check the CUDA driver", False
        )
    if count:
        return Check("gpus", True, f"{count} visible to torch", required=False)
    return Check(
        "gpus", False, "none visible here (fine on a login node; workers get theirs)", "", False
    )


def check_storage(url: str) -> Check:
    if kind(url) == "journal":
        path = Path(url.removeprefix("journal:"))
        parent = next((p for p in [path.parent, *path.parents] if p.exists()), None)
        ok = parent is not None and os.access(parent, os.W_OK)
        return Check("storage", ok, f"journal {path}", f"make {path.parent} writable")
    # A grpc:// storage is the proxy: opening it waits for it to answer and asks its claim-lock
    # service, so "reachable" means workers can both store trials and claim them.
    proxied = kind(url) == "grpc"
    fix = (
        "start `wcd-hpc storage serve --storage postgresql://…` on that host and port"
        if proxied
        else "check host, port, database and ~/.pgpass"
    )
    try:
        open_storage(url)
    except StorageError as exc:
        return Check("storage", False, str(exc), fix)
    return Check("storage", True, f"{'proxy ' if proxied else ''}reachable: {mask(url)}")


def check_runs_root(runs_dir: Path) -> Check:
    existing = next((p for p in [runs_dir, *runs_dir.resolve().parents] if p.exists()), None)
    ok = existing is not None and os.access(existing, os.W_OK)
    return Check(
        "runs root",
        ok,
        str(runs_dir.resolve()),
        f"create it or choose another runs_dir (mkdir -p {runs_dir})",
    )


def check_free_space(runs_dir: Path) -> list[Check]:
    """How much room the runs directory's filesystem has left: a full disk fails trials and
    leaves journals, plots and data files short."""
    where = next((p for p in [runs_dir, *runs_dir.resolve().parents] if p.exists()), None)
    if where is None:
        return []
    try:
        usage = shutil.disk_usage(where)
    except OSError:
        return []
    used = 100 * usage.used / (usage.used + usage.free) if usage.used + usage.free else 100.0
    detail = (
        f"{size_text(usage.free)} free of {size_text(usage.total)} ({used:.0f}% used) at {where}"
    )
    fix = f"free space there or choose another runs_dir (under {size_text(MIN_FREE)} fails)"
    return [Check("free space", usage.free >= LOW_FREE, detail, fix, usage.free < MIN_FREE)]


def run_checks(site: Site, url: str, runs_dir: Path, slurm_required: bool) -> list[Check]:
    return [
        *check_slurm(slurm_required),
        *check_container(site),
        check_gpus(),
        check_storage(url),
        check_runs_root(runs_dir),
        *check_free_space(runs_dir),
        *check_filesystem(url, runs_dir),
    ]


def check_filesystem(url: str, runs_dir: Path) -> list[Check]:
    """Whether the journal (or sqlite file) sits on a filesystem where its lock holds.

    A warning, not a failure: the mount table may be wrong about a site's server, and a
    one-node sweep on a local disk is fine (:mod:`wcd_hpc.launch.filesystems`).
    """
    parsed = Storage.parse(url)
    where = parsed.path or runs_dir
    verdict = filesystem_verdict(where, parsed.kind)
    if verdict is None:
        return []
    return [Check("filesystem", verdict.ok, verdict.detail, verdict.fix, required=False)]
