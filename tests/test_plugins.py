"""The plugin manager: built-ins and entry points through one path, isolated failures."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pluggy
import pytest

from wcd_hpc import Dataset, Metric, Model, hookimpl, hookspecs
from wcd_hpc.plugins import Registry, Source, load_registry

ROOT = Path(__file__).resolve().parents[1]
SRC = Source("test", "test-dist", "1.0")


def _registry_with(*modules: object) -> Registry:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    reg = Registry(manager=pm)
    for i, module in enumerate(modules):
        name = f"mod{i}"
        pm.register(module, name=name)
        reg.sources[name] = Source(name, f"dist{i}", "0.1")
    reg.collect()
    return reg


def _build(params: object, spec: object) -> None:
    return None


def test_builtins_are_registered_under_the_wcd_hpc_distribution() -> None:
    reg = load_registry(external=False)
    assert {"lenet"} <= set(reg.models)
    assert {"footprint-sim"} <= set(reg.datasets)
    assert {"f1", "accuracy", "roc_auc"} <= set(reg.metrics)
    assert {e.source.distribution for e in reg.entries()} == {"wcd-hpc"}
    assert reg.errors == []


def test_a_hook_that_raises_is_reported_and_other_plugins_still_register() -> None:
    bad = types.SimpleNamespace(
        register_models=hookimpl(lambda register: (_ for _ in ()).throw(RuntimeError("kaput")))
    )
    good = types.SimpleNamespace(
        register_models=hookimpl(lambda register: register(Model(name="ok", build=_build)))
    )
    reg = _registry_with(bad, good)
    assert "ok" in reg.models
    assert reg.errors == [
        "plugin 'mod0' (distribution dist0 0.1): register_models raised RuntimeError: kaput"
    ]


def test_a_clashing_name_keeps_the_first_and_names_both_distributions() -> None:
    first = types.SimpleNamespace(
        register_metrics=hookimpl(
            lambda register: register(Metric(name="m", direction="maximize", compute=len))
        )
    )
    second = types.SimpleNamespace(
        register_metrics=hookimpl(
            lambda register: register(Metric(name="m", direction="minimize", compute=len))
        )
    )
    reg = _registry_with(first, second)
    assert reg.metrics["m"].obj.direction == "maximize"
    assert len(reg.errors) == 1
    assert "dist1" in reg.errors[0] and "already registered by mod0 (dist0)" in reg.errors[0]


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [
        ("model", {"name": "x"}, "expected a wcd_hpc.Model, got dict"),
        ("model", Model(name="has space", build=_build), "without spaces"),
        ("model", Model(name="m", build=_build, space={"lr": "loguniform(0, 1)"}), "default space"),
        ("dataset", Dataset(name="d", load=None), "load must be callable"),  # type: ignore[arg-type]
        ("metric", Metric(name="m", direction="up", compute=len), "direction must be"),
    ],
)
def test_malformed_objects_are_rejected_with_a_reason(
    kind: str, obj: object, expected: str
) -> None:
    reg = Registry()
    reg.add(kind, obj, SRC)
    assert reg.entries() == []
    assert len(reg.errors) == 1
    assert reg.errors[0].startswith("plugin 'test' (distribution test-dist 1.0): malformed")
    assert expected in reg.errors[0]


def test_plugins_json_lists_builtins_and_the_installed_test_plugin(cli, testplugins) -> None:
    res = cli("plugins", "--json", plugins=testplugins, env={"WCD_HPC_PLUGINS": "toy"})
    assert res.code == 0, res.err
    rows = {(p["kind"], p["name"]): p for p in res.json()["plugins"]}
    assert rows[("model", "lenet")]["distribution"] == "wcd-hpc"
    toy = rows[("model", "toy-mlp")]
    assert (toy["distribution"], toy["version"], toy["plugin"]) == (
        "wcd-hpc-testplugins",
        "0.3.1",
        "toy",
    )
    assert ("dataset", "toy-blobs") in rows and ("metric", "toy-score") in rows


def test_broken_and_clashing_plugins_give_one_line_each_and_the_rest_works(
    cli, testplugins
) -> None:
    res = cli("plugins", "--json", plugins=testplugins)
    assert res.code == 1
    payload = res.json()
    names = {p["name"] for p in payload["plugins"]}
    assert {"lenet", "toy-mlp", "f1"} <= names
    errors = payload["errors"]
    assert any(
        e.startswith(
            "plugin 'broken' (distribution wcd-hpc-testplugins 0.3.1): failed to import: "
            "RuntimeError: this plugin is broken on purpose"
        )
        for e in errors
    ), errors
    assert any(
        "model name 'lenet' is already registered by wcd_hpc.default_plugins" in e for e in errors
    )
    assert any("malformed model: expected a wcd_hpc.Model, got dict" in e for e in errors)
    assert all("\n" not in e for e in errors)


def test_plugins_table_shows_distribution_and_version(cli, testplugins) -> None:
    res = cli("plugins", plugins=testplugins, env={"WCD_HPC_PLUGINS": "toy"})
    assert res.code == 0, res.err
    line = next(ln for ln in res.out.splitlines() if "toy-mlp" in ln)
    assert "wcd-hpc-testplugins" in line and "0.3.1" in line


def test_empty_allow_list_loads_only_the_builtins(cli, testplugins) -> None:
    res = cli("plugins", "--json", plugins=testplugins, env={"WCD_HPC_PLUGINS": ""})
    assert res.code == 0
    assert {p["distribution"] for p in res.json()["plugins"]} == {"wcd-hpc"}


def test_every_hook_is_documented_in_the_plugin_guide() -> None:
    guide = (ROOT / "docs" / "how-to" / "write-a-plugin.md").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert len(hooks) == 4
    for name in hooks:
        func = getattr(hookspecs, name)
        args = ", ".join(func.__code__.co_varnames[: func.__code__.co_argcount])
        assert re.search(rf"^## `{name}\({args}\)`$", guide, re.M), (
            f"the plugin guide lacks ## `{name}({args})`"
        )


def test_a_plugin_can_add_a_cli_verb(cli, tmp_path) -> None:
    pkg = tmp_path / "site"
    (pkg / "verbplugin-0.1.dist-info").mkdir(parents=True)
    (pkg / "verbplugin-0.1.dist-info" / "METADATA").write_text("Name: verbplugin\nVersion: 0.1\n")
    (pkg / "verbplugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[wcd_hpc]\nverb = verbplugin\n"
    )
    (pkg / "verbplugin.py").write_text(
        "from wcd_hpc import hookimpl\n"
        "@hookimpl\n"
        "def register_commands(app):\n"
        "    @app.command('hello')\n"
        "    def hello():\n"
        "        print('hello from a plugin')\n"
    )
    res = cli("hello", plugins=pkg)
    assert res.code == 0, res.err
    assert res.out.strip() == "hello from a plugin"
