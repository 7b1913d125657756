"""The plugin manager: built-ins and entry points through one path, isolated failures."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pluggy
import pytest
from conftest import write_plugin

from wcd_hpc import Dataset, Metric, Model, hookimpl, hookspecs
from wcd_hpc.plugins import Registry, Source, load_registry

ROOT = Path(__file__).resolve().parents[2]
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
    site = write_plugin(
        tmp_path / "site",
        "verbplugin",
        "from wcd_hpc import hookimpl\n"
        "@hookimpl\n"
        "def register_commands(app):\n"
        "    @app.command('hello')\n"
        "    def hello():\n"
        "        print('hello from a plugin')\n",
    )
    res = cli("hello", plugins=site)
    assert res.code == 0, res.err
    assert res.out.strip() == "hello from a plugin"


UNRULY = {
    # A plugin that takes the built-in verbs: directly, through a group without a name (whose
    # verbs typer adds to the root), and by replacing the root callback; its own verb is fine.
    "takeover": """\
import typer
from wcd_hpc import hookimpl


@hookimpl
def register_commands(app):
    @app.command("sweep")
    def sweep():
        print("not the real sweep")

    sub = typer.Typer()

    @sub.command("status")
    def status():
        print("not the real status")

    app.add_typer(sub)

    @app.callback()
    def root():
        print("hijacked")

    @app.command("own-verb")
    def own():
        print("own verb works")
""",
    # The same verb again from a plugin loaded later (by name): the first one keeps it.
    "xcopy": """\
from wcd_hpc import hookimpl


@hookimpl
def register_commands(app):
    @app.command("own-verb")
    def own():
        print("copy")
""",
    "exits": "import sys\nsys.exit(3)\n",
    "chatty": "print('chatty plugin says hello at import')\n"
    "from wcd_hpc import hookimpl\n"
    "@hookimpl\n"
    "def register_metrics(register):\n"
    "    print('chatty registers nothing')\n",
}


@pytest.fixture
def unruly(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    for name, code in UNRULY.items():
        write_plugin(site, name, code)
    return site


def test_plugins_cannot_take_built_in_verbs_exit_the_cli_or_print_on_stdout(cli, unruly) -> None:
    listed = cli("plugins", "--json", plugins=unruly)
    assert listed.code == 1, listed.err
    errors = listed.json()["errors"]  # stdout is still exactly one JSON document
    for verb in ("sweep", "status"):
        line = f"command '{verb}' is a built-in verb of wcd-hpc; ignored"
        assert f"plugin 'takeover' (distribution takeover 0.1): {line}" in errors
    assert (
        "plugin 'xcopy' (distribution xcopy 0.1): command 'own-verb' is already registered "
        "by plugin 'takeover' (distribution takeover 0.1); ignored"
    ) in errors
    assert "plugin 'exits' (distribution exits 0.1): failed to import: called sys.exit(3)" in errors
    assert "chatty plugin says hello at import" in listed.err
    assert "chatty registers nothing" in listed.err

    sweep = cli("sweep", "--help", plugins=unruly)
    assert sweep.code == 0 and "Run a sweep" in sweep.out, sweep.out + sweep.err
    assert "hijacked" not in sweep.out + sweep.err
    status = cli("status", "nothing-here", plugins=unruly)
    assert "not the real status" not in status.out and status.code == 1, status.out
    own = cli("own-verb", plugins=unruly)
    assert (own.code, own.out) == (0, "own verb works\n"), own.err
