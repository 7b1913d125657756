"""The evaluation figures: PNG and PDF, provenance on each, classes named, energy figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wcd_hpc.queue.schema import (
    CONFUSION_PLOT,
    EFF_VS_ENERGY_PLOT,
    PLOTS_DIR,
    Q_PLOT,
    Q_VS_ENERGY_PLOT,
    ROC_PLOT,
)
from wcd_hpc.results.evaluation import Provenance, write_plots
from wcd_hpc.results.plots import Classes

FIGURES = (CONFUSION_PLOT, ROC_PLOT, Q_PLOT, Q_VS_ENERGY_PLOT, EFF_VS_ENERGY_PLOT)
PROVENANCE = Provenance("gh-test", "trial 7", "lenet", "footprint-sim")


def _sample(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Gamma (class 0) / proton (class 1) scores that separate better at high energy."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    log_e = rng.uniform(2.5, 4.5, n)
    z = rng.normal(0, 1, n) + np.where(y == 0, 1, -1) * (0.4 + 0.8 * (log_e - 2.5))
    p_gamma = 1 / (1 + np.exp(-1.5 * z))
    return y, np.stack([p_gamma, 1 - p_gamma], axis=1), {"energy": 10**log_e}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], np.ndarray]:
    out = tmp_path_factory.mktemp("figures")
    y, probs, meta = _sample()
    titles = write_plots(out, y, probs, meta, ("gamma", "proton"), signal=0, provenance=PROVENANCE)
    return out / PLOTS_DIR, titles, np.log10(meta["energy"])


def test_every_figure_is_written_as_png_and_pdf(drawn: tuple) -> None:
    folder, titles, _ = drawn
    assert sorted(titles) == sorted(FIGURES)
    for name in FIGURES:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (folder / name).with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def test_every_figure_names_study_trial_model_dataset_size_and_energy_range(drawn: tuple) -> None:
    folder, titles, log_e = drawn
    energy = f"{log_e.min():.2f}–{log_e.max():.2f}"
    for name in FIGURES:
        title = titles[name]
        for part in ("study gh-test", "trial 7", "model lenet", "footprint-sim", "N = 400"):
            assert part in title, (name, part)
        assert energy in title and r"\log_{10}(E_0/\mathrm{GeV})" in title
        # The PDF carries the same provenance as plain text in its metadata (Subject).
        pdf = (folder / name).with_suffix(".pdf").read_bytes()
        assert b"study gh-test ; trial 7 ; model lenet" in pdf
        assert energy.replace("–", "-").encode() in pdf


def test_the_png_is_at_print_resolution(drawn: tuple) -> None:
    folder, _, _ = drawn
    with Image.open(folder / Q_PLOT) as image:
        assert min(image.info["dpi"]) >= 199.5  # 200 dpi, stored as pixels per metre
        assert image.size[0] >= 800


def test_the_q_figure_marks_an_optimum_only_with_ten_background_events(tmp_path: Path) -> None:
    y, probs, _ = _sample(n=400)
    titles = write_plots(tmp_path, y, probs, {}, ("gamma", "proton"), signal=0)
    assert "optimum among cuts keeping ≥ 10 proton events" in titles[Q_PLOT]
    few = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:8]]  # 8 protons left
    titles = write_plots(tmp_path, y[few], probs[few], {}, ("gamma", "proton"), signal=0)
    assert "no cut keeps ≥ 10 proton events" in titles[Q_PLOT]


def test_energy_figures_need_an_energy_per_event(tmp_path: Path) -> None:
    y, probs, _ = _sample()
    titles = write_plots(tmp_path, y, probs, {}, ("gamma", "proton"))
    assert sorted(titles) == sorted((CONFUSION_PLOT, ROC_PLOT, Q_PLOT))


def test_a_caller_that_gives_no_provenance_or_signal_still_gets_named_figures(
    tmp_path: Path,
) -> None:
    # sync draws from predictions.npz this way: the default signal class (gamma) is used.
    y, probs, _ = _sample()
    titles = write_plots(tmp_path, y, probs, {}, ("proton", "gamma"))  # gamma is class 1
    assert "provenance not recorded" in titles[ROC_PLOT]
    assert "cuts on the gamma score" in titles[ROC_PLOT]


def test_axis_labels_name_signal_and_background_in_physics_notation() -> None:
    iron = Classes(("iron", "proton"), 0)
    assert iron.signal_label() == r"signal efficiency $\varepsilon_{\mathrm{Fe}}$ (iron kept)"
    assert iron.background_label() == (
        r"background survival $\varepsilon_{\mathrm{p}}$ (proton kept)"
    )
    assert iron.q_label() == r"$Q = \varepsilon_{\mathrm{Fe}}\,/\sqrt{\varepsilon_{\mathrm{p}}}$"
    gamma = Classes(("proton", "gamma", "iron"), 1)
    assert gamma.eff_s() == r"$\varepsilon_{\gamma}$"
    assert gamma.eff_b() == r"$\varepsilon_{\mathrm{bkg}}$"
    assert "(proton, iron kept)" in gamma.background_label()
