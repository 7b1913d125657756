"""`wcd-hpc profiles` and `wcd-hpc doctor`: site profiles validated, problems named with a fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_profiles_are_listed_and_valid(cli) -> None:
    res = cli("profiles", "--json", cwd=ROOT)
    assert res.code == 0, res.out + res.err
    rows = {
        r["name"]: r for r in json.loads(res.out)["profiles"] if r["path"].startswith(str(ROOT))
    }
    assert {"dev", "local", "university"} <= set(rows)
    assert rows["dev"]["partition"] == "gpu" and rows["dev"]["executor"] == "slurm"
    assert rows["university"]["image"].endswith(".sif")
    assert all(r["error"] is None for r in rows.values())


def test_a_broken_profile_is_reported_with_file_and_key(cli, tmp_path) -> None:
    profiles = tmp_path / "slurm" / "profiles"
    profiles.mkdir(parents=True)
    shutil.copy(ROOT / "slurm/profiles/dev.toml", profiles / "dev.toml")
    (profiles / "bad.toml").write_text('workers = "many"\n[slurm]\npartition = "gpu; rm -rf /"\n')
    res = cli("profiles")
    assert res.code == 1
    errors = [line for line in res.out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"{profiles / 'bad.toml'}" in errors[0] and "workers" in errors[0]


def test_doctor_names_what_to_fix(cli, tmp_path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(
        'executor = "slurm"\n[container]\nruntime = "apptainer"\nimage = "/nowhere/x.sif"\n'
    )
    res = cli(
        "doctor",
        "--profile",
        str(profile),
        "--runs-dir",
        str(tmp_path / "runs"),
        env={"PATH": "/usr/bin:/bin"},
    )
    assert res.code == 1
    lines = res.out.splitlines()
    image = next(line for line in lines if " image:" in line)
    assert image.startswith("FAIL") and "apptainer build /nowhere/x.sif Apptainer.def" in image
    runtime = next(line for line in lines if " apptainer:" in line)
    assert "not on PATH" in runtime and "module load apptainer" in runtime
    assert any(line.startswith("ok") and "runs root" in line for line in lines)


def test_doctor_passes_on_the_dev_cluster(cli, tmp_path, slurm_cluster) -> None:
    res = cli(
        "doctor",
        "--profile",
        str(ROOT / "slurm/profiles/dev.toml"),
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert res.code == 0, res.out
    assert any(
        line.startswith("ok") and "slurm partitions" in line for line in res.out.splitlines()
    )


@pytest.mark.parametrize(
    "text",
    [
        'runs_dri = "/scratch"\n',  # a key no profile takes
        '[slurm]\npartiton = "gpu"\n',
        'description = 3\n[slurm]\nconstraint = "a &"\n',
    ],
)
def test_sweep_refuses_a_profile_that_profiles_marks_invalid_with_the_same_line(
    tmp_path, monkeypatch, text
) -> None:
    from typer.testing import CliRunner

    from wcd_hpc.cli import PROG_NAME, app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WCD_HPC_PROFILE", raising=False)
    (tmp_path / "slurm" / "profiles").mkdir(parents=True)
    (tmp_path / "slurm" / "profiles" / "odd.toml").write_text(text, encoding="utf-8")
    listed = CliRunner().invoke(app, ["profiles", "--json"], prog_name=PROG_NAME)
    rows = {r["name"]: r for r in json.loads(listed.output)["profiles"]}
    assert rows["odd"]["error"], rows["odd"]
    exp = tmp_path / "q.yaml"
    exp.write_text("name: q\ndataset: footprint-sim\nmodel: mlp\ntrials: 1\n", encoding="utf-8")
    res = CliRunner().invoke(
        app, ["sweep", str(exp), "--dry-run", "--profile", "odd"], prog_name=PROG_NAME
    )
    assert str(res.exception) == rows["odd"]["error"]
    assert not (tmp_path / "runs").exists()
