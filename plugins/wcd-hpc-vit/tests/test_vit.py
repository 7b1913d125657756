"""The ViT plugin's own tests: wcd-hpc's conformance kit plus what is particular to a ViT."""

from __future__ import annotations

import re

import pytest
import torch
from wcd_hpc import DataSpec
from wcd_hpc.experiment.space import Space
from wcd_hpc.testing import assert_conforms, check_plugin

from wcd_hpc_vit.model import SPACE, build, divisors

FOOTPRINT = DataSpec(input_shape=(1, 80, 80), num_classes=2, class_names=("gamma", "proton"))


def test_the_plugin_conforms_through_its_entry_point() -> None:
    report = assert_conforms("vit", samples=3)
    assert report.source.distribution == "wcd-hpc-vit"
    assert report.checked == ["model 'vit'"]


def test_it_conforms_for_three_classes_on_a_grid_the_patches_do_not_tile() -> None:
    spec = DataSpec(input_shape=(1, 36, 36), num_classes=3, class_names=("g", "p", "fe"))
    report = check_plugin("vit", spec=spec, samples=3, seed=1)
    assert report.ok, str(report)


def test_every_default_patch_size_tiles_the_80x80_footprint() -> None:
    choices = Space.from_mapping(SPACE).distributions()["patch"].choices  # type: ignore[attr-defined]
    assert list(choices) == divisors(80) == [4, 5, 8, 10, 16, 20]


@pytest.mark.parametrize("patch", [8, 16])
def test_the_sequence_is_one_class_token_plus_one_token_per_patch(patch: int) -> None:
    model = build({"patch": patch, "width": 32, "heads": 2, "depth": 1}, FOOTPRINT)
    assert model.pos.shape == (1, (80 // patch) ** 2 + 1, 32)
    assert model(torch.zeros(3, 1, 80, 80)).shape == (3, 2)


def test_two_dimensional_inputs_get_a_channel_axis() -> None:
    spec = DataSpec(input_shape=(40, 40), num_classes=2, class_names=("a", "b"))
    assert build({"patch": 10}, spec)(torch.zeros(2, 40, 40)).shape == (2, 2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"width": 30, "heads": 4}, "'width' (30) must be a multiple of 'heads' (4)"),
        ({"patch": 0}, "'patch' must be a positive integer"),
        ({"patch": 100}, "'patch' (100) is larger than the image"),
        ({"dropout": 1.0}, "'dropout' must be a number in [0, 1)"),
    ],
)
def test_bad_parameters_are_named_in_the_error(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build(params, FOOTPRINT)
