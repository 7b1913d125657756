"""Start-up: commands a user runs on a login node never import torch; workers do, once.

Importing torch costs about 0.7 s of CPU. ``sweep`` validates the experiment against every
plugin and submits; ``status``, ``plugins``, ``render`` and ``--dry-run`` only read. None of them
builds a model, so each must work in a process where ``import torch`` fails outright, which also
holds every built-in plugin (and the test plugin, written the way the README asks plugin
authors to) to importing torch only in ``build`` and ``load``.
"""

from __future__ import annotations

import json
import subprocess
import sys


def test_plugins_render_dry_run_and_status_run_without_torch(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    toy = {"WCD_HPC_PLUGINS": "toy"}
    listed = cli("plugins", "--json", plugins=testplugins, env=toy, without_torch=True)
    assert listed.code == 0, listed.err
    names = {(p["kind"], p["name"]) for p in json.loads(listed.out)["plugins"]}
    assert {("model", "lenet"), ("model", "resnet"), ("model", "toy-mlp")} <= names
    assert {("dataset", "footprint-sim"), ("dataset", "footprint-h5")} <= names

    exp = toy_experiment(name="light", trials=2)
    dry = cli("sweep", str(exp), "--dry-run", plugins=testplugins, env=toy, without_torch=True)
    assert dry.code == 0, dry.err
    assert "sampled parameter sets" in dry.out
    rendered = cli("render", str(exp), "--out", "scripts", plugins=testplugins, env=toy)
    assert rendered.code == 0, rendered.err

    ran = cli("sweep", str(exp), plugins=testplugins, env=toy)  # workers import torch
    assert ran.code == 0, ran.err
    status = cli("status", "light", "--json", plugins=testplugins, env=toy, without_torch=True)
    assert status.code == 0, status.err
    assert json.loads(status.out)["counts"]["COMPLETE"] == 2


def test_loading_every_builtin_plugin_imports_no_torch_h5py_or_matplotlib() -> None:
    code = (
        "import sys\n"
        "from wcd_hpc.plugins import load_registry\n"
        "reg = load_registry(external=False)\n"
        "assert not reg.errors and 'lenet' in reg.models, reg.errors\n"
        "heavy = sorted(m for m in ('torch', 'h5py', 'matplotlib', 'pandas') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
