"""Apptainer: the definition file (parsed with spython) and the worker wiring (stand-in runtime)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from spython.main.parse.parsers import SingularityParser

from wcd_hpc import __version__

ROOT = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).resolve().parents[1] / "fixtures" / "bin"


def _recipe():  # type: ignore[no-untyped-def]
    return next(iter(SingularityParser(str(ROOT / "Apptainer.def")).recipe.values()))


def test_definition_pins_its_base_image_and_labels_the_package_version() -> None:
    recipe = _recipe()
    assert recipe.fromHeader.startswith("pytorch/pytorch:")
    assert "latest" not in recipe.fromHeader and "-cuda" in recipe.fromHeader
    assert f"org.opencontainers.image.version {__version__}" in recipe.labels


def test_definition_copies_existing_files_and_installs_the_pinned_cuda_set() -> None:
    recipe = _recipe()
    for line in recipe.files:
        source = line.split()[0]
        assert (ROOT / source).exists(), f"%files names a missing path: {source}"
    assert any("-r /opt/wcd-hpc/envs/cuda.txt" in line for line in recipe.install)
    assert any("--no-deps /opt/wcd-hpc" in line for line in recipe.install)
    assert recipe.cmd.startswith("exec wcd-hpc")
    assert any("wcd-hpc --version" in line for line in recipe.install)  # %test, as spython keeps it


def test_pinned_sets_pin_every_runtime_dependency() -> None:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {
        d.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
        for d in deps
        if "python_version < '3.11'" not in d
    }
    for env in ("cpu", "cuda"):
        pins = {
            line.split("==")[0].lower(): line
            for line in (ROOT / "envs" / f"{env}.txt").read_text().splitlines()
            if line and not line.startswith("#")
        }
        assert all("==" in line for line in pins.values())
        expected = names - ({"torch"} if env == "cuda" else set())
        missing = sorted(n for n in expected if n.replace("_", "-") not in pins)
        assert not missing, f"envs/{env}.txt lacks {missing}"
    assert "torch" not in {
        line.split("==")[0] for line in (ROOT / "envs/cuda.txt").read_text().split()
    }


@pytest.mark.slow
def test_workers_run_through_the_runtime_and_record_the_image_digest(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster
) -> None:
    image = tmp_path / "images" / "wcd hpc.sif"  # a space, to prove the quoting
    image.parent.mkdir()
    image.write_bytes(b"not really an image, but hashed like one")
    data = tmp_path / "data"
    data.mkdir()
    profile = tmp_path / "site.toml"
    profile.write_text(
        (ROOT / "slurm/profiles/dev.toml").read_text()
        + f'\n[container]\nruntime = "apptainer"\nimage = "{image}"\nbinds = ["{data}"]\n'
    )
    log = tmp_path / "apptainer.log"
    path = [str(STANDIN), str(Path(sys.executable).parent), os.environ["PATH"]]
    env = {
        "WCD_HPC_PLUGINS": "toy",
        "PATH": os.pathsep.join(path),
        "APPTAINER_STANDIN_LOG": str(log),
    }
    exp = toy_experiment(name="boxed", trials=3, workers=2)
    res = cli(
        "sweep",
        str(exp),
        "--profile",
        str(profile),
        "--set",
        "executor=slurm",
        "--wait",
        "--no-sync",
        plugins=testplugins,
        env=env,
    )
    assert res.code == 0, res.err
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    for call in calls:
        assert call.startswith("exec --nv --bind ")
        assert str(data) in call and "wcd\\ hpc.sif wcd-hpc worker --study boxed" in call
    info = json.loads(cli("status", "boxed", "--json", plugins=testplugins, env=env).out)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    assert info["finished"] == 3
    import optuna

    from wcd_hpc.store.storage import open_storage

    storage = open_storage(f"journal:{tmp_path / 'runs/boxed/journal.log'}")
    trials = optuna.load_study(study_name="boxed", storage=storage).trials
    assert {t.user_attrs.get("image_sha256") for t in trials} == {digest}
