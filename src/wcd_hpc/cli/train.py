"""``wcd-hpc train``: one run of an experiment at fixed parameters (no study, no sweep)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from wcd_hpc.cli.common import friendly, out, registry, site_profile


def _show(values: dict[str, object]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


@friendly
def train_cmd(
    experiment: Path = typer.Argument(..., help="Experiment file (YAML)."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Override the runs root."),
    profile: str | None = typer.Option(None, "--profile", help="Site profile name or path."),
    sets: list[str] = typer.Option(
        [], "--set", help="Override any key; --set param_space.lr=3e-3 fixes a parameter."
    ),
) -> None:
    """Train once: each search-space entry at its midpoint (choices: the first option).

    Writes the same files as a sweep trial under <runs_dir>/<name>/train/trials/<n>/.
    """
    from wcd_hpc.train import fixed_params, plan_train, train  # torch: only here

    reg = registry()
    overrides = [*sets, *([f"runs_dir={runs_dir}"] if runs_dir is not None else [])]
    exp, space = plan_train(experiment, reg, profile=site_profile(profile), overrides=overrides)
    out.print(
        f"training [bold]{escape(exp.name)}[/]: model {escape(exp.model)}, "
        f"dataset {escape(exp.dataset)}, "
        f"{exp.epochs} epochs",
        markup=True,
    )
    out.print(f"parameters: {_show(fixed_params(space))}")
    result = train(exp, space, reg)
    test = result.result.get("test", {})
    out.print(f"validation {exp.metric}={result.result['objective']:.4f}; test " + _show(test))
    out.print(f"files: {result.out}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
