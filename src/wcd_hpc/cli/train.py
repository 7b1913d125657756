"""``wcd-hpc train``: one run of an experiment at fixed parameters (no study, no sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from wcd_hpc import merit
from wcd_hpc.cli.common import ExperimentArgument, ProfileOption, StorageOption, out, registry
from wcd_hpc.launch.settings import site_profile
from wcd_hpc.queue.schema import TRIAL_KEPT_EPOCH


def _show(values: dict[str, object]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def train_cmd(
    experiment: ExperimentArgument,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Override the runs root.")
    ] = None,
    storage: StorageOption = None,
    profile: ProfileOption = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override any key; --set param_space.lr=3e-3 fixes a parameter."
        ),
    ] = None,
) -> None:
    """Train once: each search-space entry at its midpoint (choices: the first option).

    Writes the same files as a sweep trial under <runs_dir>/<name>/train/trials/<n>/.
    """
    from wcd_hpc.engine.train import fixed_params, plan_train, train  # torch: only here

    reg = registry()
    flags: dict[str, tuple[str, Any]] = {"storage": ("--storage", storage)}
    if runs_dir is not None:
        flags["runs_dir"] = ("--runs-dir", runs_dir)
    prof = site_profile(profile)
    exp, space = plan_train(experiment, reg, profile=prof, sets=sets or [], flags=flags)
    out.print(
        f"training [bold]{escape(exp.name)}[/]: model {escape(exp.model)}, "
        f"dataset {escape(exp.dataset)}, "
        f"{exp.epochs} epochs",
        markup=True,
    )
    out.print(f"parameters: {_show(fixed_params(space))}")
    result = train(exp, space, reg)
    test = result.result.get("test", {})
    kept = result.result.get(TRIAL_KEPT_EPOCH)
    at = (
        f" (epoch {kept} of {result.result.get('epochs', exp.epochs)}, keep: "
        f"{result.result.get('keep', 'last')})"
        if kept is not None
        else ""
    )
    objective = merit.rounded(
        result.result["objective"],
        result.result.get("objective_lo"),
        result.result.get("objective_hi"),
    )
    out.print(
        f"validation {exp.metric}={objective}{at}; test (cuts from validation) "
        + merit.format_values(test)
    )
    out.print(f"files: {result.out}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
