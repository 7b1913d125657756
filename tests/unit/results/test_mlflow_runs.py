"""What a trial run carries besides its epochs: energy-bin metrics and table, version tags."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from wcd_hpc.results import syncdata
from wcd_hpc.results.syncdata import bin_metrics, bin_table, environment_tags, write_table

BINS = [
    {"log10_e_min": 3.0, "log10_e_max": 3.5, "events": 5, "per_class": [2, 3], "f1": 0.5,
     "q_factor": None},
    {"log10_e_min": 3.5, "log10_e_max": 4.0, "events": 4, "per_class": [4, 0], "f1": 1.0,
     "q_factor": 2.0},
]  # fmt: skip


def test_only_the_objective_becomes_one_metric_per_energy_bin_named_by_the_bin() -> None:
    metrics = bin_metrics(BINS, "f1", stamp=1234)
    assert {m.key: m.value for m in metrics} == {
        "test_f1_lgE_3.0_3.5": 0.5,
        "test_f1_lgE_3.5_4.0": 1.0,
    }
    assert all(m.step == 0 and m.timestamp == 1234 for m in metrics)  # no bin index as step
    q = bin_metrics(BINS, "q_factor", stamp=0)
    assert [m.key for m in q] == ["test_q_factor_lgE_3.5_4.0"]  # null in bin 0: no point


def test_the_energy_bin_table_names_each_class_and_reads_as_csv_and_split_json(tmp_path) -> None:
    table = bin_table(BINS, ["gamma", "proton"])
    assert table["columns"][:5] == ["log10_e_min", "log10_e_max", "events", "events_gamma",
                                    "events_proton"]  # fmt: skip
    as_csv, as_json = write_table(BINS, ["gamma", "proton"], tmp_path)
    rows = list(csv.DictReader(as_csv.open()))
    assert rows[1]["events_gamma"] == "4" and rows[0]["q_factor"] == ""
    assert json.loads(as_json.read_text()) == table
    assert write_table([], ["gamma"], tmp_path / "none") == []


def test_cuda_and_driver_versions_are_tagged_only_when_torch_sees_a_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tags = environment_tags()
    assert tags["versions.torch"] == torch.__version__
    assert {"versions.wcd_hpc", "versions.optuna", "versions.mlflow", "versions.python"} <= set(
        tags
    )
    assert not any("cuda" in k for k in tags)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(syncdata, "nvidia_driver", lambda: "550.54.15")
    gpu = environment_tags()
    assert gpu["versions.cuda"] == "12.4" and gpu["versions.cuda_driver"] == "550.54.15"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "0.5"])
def test_values_that_are_not_finite_numbers_make_no_bin_metric(value) -> None:
    assert bin_metrics([{"log10_e_min": 3.0, "log10_e_max": 3.5, "f1": value}], "f1", 0) == []


def test_a_table_logged_again_replaces_the_old_rows_instead_of_appending(tmp_path) -> None:
    """The finalists' per-bin table of a parent run (and a trial's bin table) after a re-sync."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp).info.run_id
    name = syncdata.FINAL_TABLE_JSON
    syncdata.log_rows(client, run, ["log10_e_min", "val_mean"], [[2.5, 1.0], [3.0, None]], name)
    syncdata.log_rows(client, run, ["log10_e_min", "val_mean"], [[2.5, 2.0]], name)
    local = client.download_artifacts(run, f"{syncdata.TABLES_DIR}/{name}", str(tmp_path))
    assert json.loads(Path(local).read_text()) == {
        "columns": ["log10_e_min", "val_mean"],
        "data": [[2.5, 2.0]],
    }
