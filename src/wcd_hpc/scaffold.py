"""``wcd-hpc plugins new NAME``: write a plugin distribution that installs and passes its tests.

The scaffold is the shortest safe path to a plugin: a ``pyproject.toml`` declaring the ``wcd_hpc``
entry point, one small model that works on any input shape, a test that runs the conformance kit
(:mod:`wcd_hpc.testing`) and a README. It must work unedited, so the test-suite installs a fresh
scaffold and runs its tests. Templates use :class:`string.Template` (``$name``) because the files
they produce are full of the braces that ``str.format`` would need escaped.
"""

from __future__ import annotations

import keyword
import re
import sys
from pathlib import Path
from string import Template

from wcd_hpc import __version__
from wcd_hpc.errors import PluginError

__all__ = ["ScaffoldError", "check_name", "create"]

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
MAX_NAME = 40


class ScaffoldError(PluginError, ValueError):
    """A plugin name or target directory that cannot be used; the message is one line."""


def check_name(name: str, taken: set[str] | None = None) -> str:
    """Return the Python package name for plugin ``name`` or raise :class:`ScaffoldError`.

    One name serves as distribution, entry point and model name, so it must be valid as all
    three: lowercase letters and digits in hyphen-separated words (``demo-model``).
    """
    if not NAME_RE.match(name) or len(name) > MAX_NAME:
        raise ScaffoldError(
            f"plugin name {name!r}: expected lowercase letters and digits in words joined by "
            f"single hyphens, starting with a letter, at most {MAX_NAME} characters "
            "(e.g. demo-model)"
        )
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or package in sys.stdlib_module_names or package == "wcd_hpc":
        raise ScaffoldError(
            f"plugin name {name!r}: its package name {package!r} would shadow a Python module; "
            "choose another name"
        )
    if taken and name in taken:
        raise ScaffoldError(f"plugin name {name!r}: a model of that name is already registered")
    return package


def create(name: str, parent: Path, taken: set[str] | None = None) -> Path:
    """Write the distribution into ``parent / name`` and return that directory.

    Refuses an existing target, even an empty one: a scaffold never overwrites someone's work.
    """
    package = check_name(name, taken)
    target = parent / name
    if target.exists():
        raise ScaffoldError(f"{target}: already exists; refusing to overwrite it")
    if parent.exists() and not parent.is_dir():
        raise ScaffoldError(f"{parent}: not a directory")
    values = {"name": name, "package": package, "core_version": __version__, "docs": DOCS_URL}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{package}/__init__.py": INIT,
        f"src/{package}/plugin.py": PLUGIN,
        f"tests/test_{package}.py": TESTS,
    }
    for rel, template in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values))
    return target


#: The documentation site: the Documentation URL of wcd-hpc's ``[project.urls]`` (a test keeps
#: the two equal), a placeholder until the project has a public home.
DOCS_URL = "https://example.org/wcd-hpc/docs/"

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "A wcd-hpc model plugin: $name"
readme = "README.md"
requires-python = ">=3.10"
# torch comes with wcd-hpc; install torch yourself first on machines without a GPU (see README).
dependencies = ["wcd-hpc>=$core_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

# The entry point is what makes wcd-hpc find the plugin after `pip install`.
[project.entry-points.wcd_hpc]
$name = "$package.plugin"

[tool.setuptools.packages.find]
where = ["src"]
"""

INIT = '''\
"""$name: a model plugin for wcd-hpc (hooks in :mod:`$package.plugin`)."""
'''

PLUGIN = '''\
"""The $name model: a small multi-layer perceptron that works on any input shape.

Replace the network with your own; keep ``build(params, spec)`` returning a fresh module whose
output is (batch, spec.num_classes) class logits, and keep ``SPACE`` in the search-space language.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from wcd_hpc import DataSpec, Model, hookimpl

if TYPE_CHECKING:
    from torch import nn

#: The default search space; an experiment's ``param_space`` overrides it key by key.
#: ``lr``, ``batch_size``, ``optimizer`` and ``reg`` are read by wcd-hpc's training loop.
SPACE: dict[str, Any] = {
    "lr": "loguniform(1e-4, 1e-2)",
    "batch_size": "randint(32, 128)",
    "optimizer": "adam",
    "hidden": "randint(16, 128)",
    "dropout": "uniform(0.0, 0.5)",
}


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """A fresh network for ``spec`` (input shape, number of classes) and sampled ``params``.

    torch is imported here rather than at the top: wcd-hpc loads every installed plugin for
    each command on the login node (``sweep``, ``status``, ``plugins``), and only the workers
    build models. A bigger network goes in a module of its own, imported here the same way.
    """
    from torch import nn

    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(spec.input_shape), int(params.get("hidden", 64))),
        nn.ReLU(),
        nn.Dropout(float(params.get("dropout", 0.0))),
        nn.Linear(int(params.get("hidden", 64)), spec.num_classes),
    )


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    register(
        Model(
            name="$name",
            build=build,
            space=SPACE,
            description="$name: a small MLP (scaffolded by wcd-hpc plugins new)",
        )
    )
'''

TESTS = '''\
"""The plugin's contract, checked by wcd-hpc's conformance kit (run ``pytest`` after installing)."""

from wcd_hpc import DataSpec
from wcd_hpc.testing import assert_conforms, check_plugin


def test_the_plugin_conforms_on_footprint_shaped_data() -> None:
    # Loads the plugin through its entry point, as wcd-hpc does, and checks every model:
    # the default space parses and samples, the model builds, trains a step, gives finite loss.
    assert_conforms("$name")


def test_the_model_handles_three_classes_and_flat_inputs() -> None:
    spec = DataSpec(input_shape=(8,), num_classes=3, class_names=("a", "b", "c"))
    report = check_plugin("$name", spec=spec)
    assert report.ok, str(report)
    assert report.checked == ["model '$name'"]
'''

README = """\
# $name

A model plugin for [wcd-hpc]($docs), scaffolded by `wcd-hpc plugins new $name`.
How to write, test and publish one: ${docs}how-to/write-a-plugin/

```bash
pip install ./$name              # or: pip install -e './$name[test]' while developing
wcd-hpc plugins                  # lists model '$name' with this distribution
pytest $name/tests               # the conformance kit checks the plugin's contract
```

Use it in an experiment file with `model: $name`; its default search space is `SPACE` in
`src/$package/plugin.py`. Set `WCD_HPC_TRACE_PLUGINS=1` to see how wcd-hpc loads it.
"""
