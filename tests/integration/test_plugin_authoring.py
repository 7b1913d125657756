"""Plugin authoring: the conformance kit, the scaffold, the plugin guide's examples, load tracing,
and failures inside a plugin's own code attributed to its distribution."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import typer

from wcd_hpc import Dataset, DataSpec, Metric, Model, Split, Splits, hookimpl
from wcd_hpc.plugins import Source, load_plugin, new_registry
from wcd_hpc.testing import ConformanceError, assert_conforms, check_plugin

ROOT = Path(__file__).resolve().parents[2]
TESTPLUGINS = "wcd-hpc-testplugins 0.3.1"


def _module(name: str, **hooks: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, func in hooks.items():
        setattr(module, hook, hookimpl(func))
    return module


class _TenOutputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)[:, :4])


def _split(n: int, y: list[int], meta_len: int) -> Split:
    return Split(torch.zeros(n, 4), torch.tensor(y), {"energy": np.ones(meta_len)})


def _bad_load(params: object, seed: int, cache: str) -> Splits:
    spec = DataSpec(input_shape=(4,), num_classes=2, class_names=("a", "b"))
    good = _split(2, [0, 1], 2)
    return Splits(_split(3, [0, 1, 2], 2), good, good, spec)


def _minimise_wrongly(y_true: np.ndarray, y_score: np.ndarray, meta: object) -> float:
    return float(np.mean(y_score.argmax(axis=1) == y_true))  # an accuracy declared "minimize"


def _bad_models(register: object) -> None:
    register(Model(name="wide", build=lambda p, s: _TenOutputs()))  # type: ignore[operator]
    register(Model(name="no-module", build=lambda p, s: "a string"))  # type: ignore[operator]


def test_every_violation_is_listed_naming_the_object_and_the_check() -> None:
    plugin = _module(
        "badplugin",
        register_models=_bad_models,
        register_datasets=lambda register: register(Dataset(name="bad-data", load=_bad_load)),
        register_metrics=lambda register: register(
            Metric(name="upside-down", direction="minimize", compute=_minimise_wrongly)
        ),
    )
    with pytest.raises(ConformanceError) as info:
        assert_conforms(plugin, samples=1)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("plugin 'badplugin' (distribution unknown ?): checked dataset")
    assert lines[0].endswith("5 violation(s):") and len(lines) == 6
    body = "\n".join(lines[1:])
    assert "- dataset 'bad-data': splits: train: y must be in [0, 2), got [0, 2]" in body
    assert "- dataset 'bad-data': splits: train: meta['energy'] has length 2, expected 3" in body
    assert "- model 'no-module': build: expected a torch.nn.Module, got str" in body
    assert "- metric 'upside-down': direction: direction is minimize but perfect" in body
    # The bad dataset is not used to build models: they fall back to the footprint spec.
    assert "model 'wide': outputs: class logits must have shape (4, 2) (batch, classes), got" in (
        body
    )


def test_a_conforming_plugin_reports_what_it_checked(testplugins, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(testplugins))
    report = check_plugin("toy")
    assert str(report.source) == f"plugin 'toy' (distribution {TESTPLUGINS})"
    toy = {"dataset 'toy-blobs'", "model 'toy-mlp'", "metric 'toy-score'"}
    assert toy <= set(report.checked)
    # The toy plugin may hold test-only models for other tests; these three must conform.
    assert not [v for v in report.violations if v.subject in toy], str(report)


def test_import_errors_clashes_and_forward_failures_are_violations(
    testplugins, monkeypatch
) -> None:
    monkeypatch.syspath_prepend(str(testplugins))
    broken = check_plugin("broken")
    assert [str(v) for v in broken.violations] == [
        "plugin 'broken': load: failed to import: RuntimeError: this plugin is broken on purpose"
    ]
    clash = [str(v) for v in check_plugin("clash").violations]
    assert any("model name 'lenet' is already registered by" in v for v in clash), clash
    forward = [str(v) for v in check_plugin("wcd_hpc_testplugins.badforward").violations]
    assert len(forward) == 2  # one per sampled parameter set
    assert forward[0].startswith(
        "model 'toy-badforward': forward: RuntimeError: forward is broken on purpose (params"
    )


def test_builtin_models_and_metrics_conform() -> None:
    assert check_plugin("wcd_hpc.default_plugins.lenet").ok
    metrics = check_plugin("wcd_hpc.default_plugins.metrics")
    assert metrics.ok, str(metrics)
    assert {"metric 'f1'", "metric 'accuracy'", "metric 'roc_auc'"} <= set(metrics.checked)


def _guide_python_blocks() -> list[str]:
    """The examples of the plugin guide (docs/how-to/write-a-plugin.md, once the README's)."""
    guide = (ROOT / "docs" / "how-to" / "write-a-plugin.md").read_text()
    return re.findall(r"```python\n(.*?)```", guide, re.S)


def test_the_plugin_guide_examples_run_and_conform() -> None:
    blocks = _guide_python_blocks()
    assert len(blocks) >= 5
    checked: list[str] = []
    for i, code in enumerate(blocks):
        module = types.ModuleType(f"readme_example_{i}")
        exec(compile(code, f"write-a-plugin.md python block {i}", "exec"), module.__dict__)
        if hasattr(module, "register_commands"):
            registry = new_registry()
            assert load_plugin(registry, Source(module.__name__, "readme", "0"), lambda m=module: m)
            app = typer.Typer()
            registry.add_commands(app)
            assert registry.errors == []
            assert [c.name for c in app.registered_commands] == ["hello"]
        elif any(hasattr(module, f"register_{k}") for k in ("models", "datasets", "metrics")):
            report = assert_conforms(module)
            checked += report.checked
    assert {"model 'linear'", "dataset 'noise'", "metric 'balanced_accuracy'"} <= set(checked)


def test_tracing_names_each_plugin_loaded_and_what_each_hook_registered(cli, testplugins) -> None:
    env = {"WCD_HPC_PLUGINS": "toy,broken", "WCD_HPC_TRACE_PLUGINS": "1"}
    res = cli("plugins", "--json", plugins=testplugins, env=env)
    trace = [ln for ln in res.err.splitlines() if ln.startswith("wcd-hpc trace: ")]
    toy = f"plugin 'toy' (distribution {TESTPLUGINS})"
    assert f"wcd-hpc trace: loaded {toy} from wcd_hpc_testplugins.toy" in trace
    registered = f"wcd-hpc trace: register_models() of {toy} registered model 'toy-mlp'"
    assert any(ln.startswith(registered) for ln in trace), trace
    assert any(ln.startswith("wcd-hpc trace: plugin 'broken' (distribution") for ln in trace)
    assert any("skipped plugin 'clash'" in ln for ln in trace)
    quiet = cli("plugins", "--json", plugins=testplugins, env={"WCD_HPC_PLUGINS": "toy"})
    assert "trace" not in quiet.err


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Demo", "expected lowercase letters and digits"),
        ("demo--model", "expected lowercase letters and digits"),
        ("json", "would shadow a Python module"),
        ("lenet", "a model of that name is already registered"),
    ],
)
def test_plugins_new_refuses_bad_names_in_one_line(cli, tmp_path, name, expected) -> None:
    res = cli("plugins", "new", name)
    assert res.code == 2
    assert res.err.count("\n") == 1 and expected in res.err
    assert not (tmp_path / name).exists()


def test_plugins_new_refuses_to_overwrite_a_directory(cli, tmp_path) -> None:
    (tmp_path / "demo-model").mkdir()
    (tmp_path / "demo-model" / "mine.txt").write_text("keep me")
    res = cli("plugins", "new", "demo-model")
    assert res.code == 2 and "already exists; refusing to overwrite it" in res.err
    assert [p.name for p in (tmp_path / "demo-model").iterdir()] == ["mine.txt"]


@pytest.mark.slow
def test_a_scaffolded_plugin_installs_lists_sweeps_and_passes_its_tests(
    cli, testplugins, tmp_path
) -> None:
    made = cli("plugins", "new", "demo-model", "--dir", "work")
    assert made.code == 0, made.err
    source = tmp_path / "work" / "demo-model"
    assert {p.name for p in source.iterdir()} == {"pyproject.toml", "README.md", "src", "tests"}
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*pip, str(source)], check=True)
    path = {"PYTHONPATH": os.pathsep.join([str(site), str(testplugins)])}

    listed = cli("plugins", "--json", env={**path, "WCD_HPC_PLUGINS": "demo-model,toy"})
    assert listed.code == 0, listed.err
    row = next(p for p in listed.json()["plugins"] if p["name"] == "demo-model")
    assert (row["kind"], row["distribution"], row["version"]) == ("model", "demo-model", "0.1.0")

    (tmp_path / "demo.yaml").write_text(
        "name: demo\ndataset: {name: toy-blobs, params: {events: 300}}\nmodel: demo-model\n"
        "metric: {name: accuracy}\ntrials: 2\nepochs: 1\nworkers: 1\nexecutor: local\n"
    )
    swept = cli("sweep", "demo.yaml", env={**path, "WCD_HPC_PLUGINS": "demo-model,toy"})
    assert swept.code == 0, swept.err
    assert "2/2 trials finished" in swept.out

    env = {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}
    own = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(source / "tests")],
        cwd=source,
        env={**env, **path},
        capture_output=True,
        text=True,
    )
    assert own.returncode == 0, own.stdout + own.stderr
    assert "2 passed" in own.stdout


@pytest.mark.slow
def test_a_model_whose_forward_fails_is_blamed_on_its_distribution_and_others_run(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    # No allow-list: the broken and clashing plugins load (and warn) alongside.
    bad = toy_experiment(name="badfwd", trials=3, extra="")
    text = bad.read_text().replace("model: toy-mlp", "model: toy-badforward")
    bad.write_text(text)
    res = cli("sweep", str(bad), plugins=testplugins)
    assert res.code != 0
    status = cli("status", "badfwd", "--json", plugins=testplugins)
    causes = {f["cause"] for f in status.json()["failures"]}
    assert causes == {
        "plugin 'badforward' (distribution wcd-hpc-testplugins 0.3.1): model 'toy-badforward' "
        "failed: RuntimeError: forward is broken on purpose"
    }
    good = cli("sweep", str(toy_experiment(name="fine", trials=2)), plugins=testplugins)
    assert good.code == 0, good.err
    assert "2/2 trials finished" in good.out
    warnings = [ln for ln in good.err.splitlines() if ln.startswith("warning:")]
    assert any("plugin 'broken' (distribution wcd-hpc-testplugins" in ln for ln in warnings)
