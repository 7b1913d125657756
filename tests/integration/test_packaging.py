"""What a non-editable install (a wheel, the Apptainer image) must carry besides Python code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_sbatch_templates_and_the_site_profiles(tmp_path) -> None:
    # `render`, the Slurm sync job and `profiles` read these files at run time; a wheel without
    # them installs fine and fails only on a cluster.
    # Built from a copy without the checkout's egg-info and build/ (their stale file lists would
    # hide a missing package-data entry), as a fresh clone is.
    tree = tmp_path / "tree"
    shutil.copytree(
        ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "-w", str(tmp_path), str(tree)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("wcd_hpc-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"wcd_hpc/launch/templates/{n}.sbatch.in" for n in ("worker", "sync")}
    profiles = {f"wcd_hpc/launch/profiles/{n}.toml" for n in ("dev", "local", "university")}
    assert templates <= names
    assert profiles <= names


def test_the_shipped_profiles_are_found_from_any_directory(cli, tmp_path) -> None:
    res = cli("profiles", "--json", cwd=tmp_path)
    assert res.code == 0, res.err
    rows = {r["name"]: r for r in json.loads(res.out)["profiles"]}
    assert {"dev", "local", "university"} <= set(rows)
    assert all(r["error"] is None for r in rows.values())
    dry = cli("doctor", "--profile", "university", "--runs-dir", str(tmp_path / "runs"))
    assert "no such profile" not in dry.out + dry.err


def test_a_profile_of_the_project_shadows_the_shipped_one_of_the_same_name(cli, tmp_path) -> None:
    mine = tmp_path / "slurm" / "profiles"
    mine.mkdir(parents=True)
    (mine / "dev.toml").write_text('description = "mine"\nexecutor = "local"\n')
    rows = json.loads(cli("profiles", "--json", cwd=tmp_path).out)["profiles"]
    dev = [r for r in rows if r["name"] == "dev"]
    assert len(dev) == 1 and dev[0]["description"] == "mine"
