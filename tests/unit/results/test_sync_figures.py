"""Figures drawn at sync time meet the trial figures' standard: size, dpi, PDF, provenance."""

from __future__ import annotations

from pathlib import Path

import optuna
from PIL import Image

from wcd_hpc.results import plots
from wcd_hpc.results.plots import Provenance
from wcd_hpc.results.syncplots import learning_curves, study_plots

RECORDS = [
    {"epoch": 1, "train_loss": 0.7, "val_loss": 0.65, "val_f1": 0.6},
    {"epoch": 2, "train_loss": 0.5, "val_loss": 0.55, "val_f1": 0.7},
]


def test_learning_curves_show_validation_loss_at_print_size_with_pdf_and_provenance(
    tmp_path: Path,
) -> None:
    where = Provenance("quickstart", "trial 3", "lenet", "footprint-sim", split="")
    png, pdf = learning_curves(RECORDS, tmp_path / "learning_curves.png", where)
    assert pdf.suffix == ".pdf" and pdf.read_bytes().startswith(b"%PDF")
    with Image.open(png) as image:
        width, height = image.size
        described = image.info.get("Description", "")
    inch_w, inch_h = plots.FIGSIZE
    assert (width, height) == (round(2 * inch_w * plots.DPI), round(inch_h * plots.DPI))
    assert "study quickstart ; trial 3 ; model lenet" in described
    assert learning_curves([], tmp_path / "none.png") == []


def test_study_plots_are_png_and_pdf_with_the_study_on_top(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="looked", direction="maximize")
    study.optimize(lambda t: t.suggest_float("lr", 0, 1) + t.suggest_int("n", 1, 3), n_trials=4)
    drawn = study_plots(study, tmp_path, Provenance(study="looked", split=""))
    names = {p.name for p in drawn}
    assert {"optimization_history.png", "optimization_history.pdf"} <= names
    with Image.open(tmp_path / "optimization_history.png") as image:
        assert "study looked" in image.info.get("Description", "")
        assert image.size[0] >= 1000  # print resolution, not 640 px at 80 dpi
