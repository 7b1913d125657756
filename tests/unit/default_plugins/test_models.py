"""The model zoo: resnet, cae, vae, mlp and trace-cnn build, train and keep their contracts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from wcd_hpc.api import DataSpec, Model, Split
from wcd_hpc.default_plugins import cae, common, lenet, mlp, resnet, trace_cnn, vae
from wcd_hpc.default_plugins.metrics import accuracy
from wcd_hpc.default_plugins.nets import resnet as nets_resnet
from wcd_hpc.engine.fit import fit, predict
from wcd_hpc.engine.train import fixed_params
from wcd_hpc.experiment.space import Space

SMALL: dict[str, dict[str, Any]] = {
    "resnet": {"blocks": [1, 1, 1, 1], "channels": [4, 8, 8, 16, 16]},
    "cae": {"depth": 2, "latent": 12, "channels": 3},
    "vae": {"layers": [64, 32, 16, 8]},
    "mlp": {"hidden": [32, 8]},
}
IMAGE_MODELS = {"resnet": resnet, "cae": cae, "vae": vae, "mlp": mlp}


def _registered(module: Any) -> Model:
    got: list[Model] = []
    module.register_models(got.append)
    (model,) = got
    return model


def _logits(model: Model, outputs: Any) -> torch.Tensor:
    return model.logits(outputs) if model.logits else outputs


@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
@pytest.mark.parametrize("shape", [(1, 80, 80), (80, 80), (1, 40, 40), (2, 17, 23)])
def test_image_models_give_class_logits_for_any_grid(name: str, shape: tuple[int, ...]) -> None:
    model = _registered(IMAGE_MODELS[name])
    net = model.build(SMALL[name], DataSpec(shape, 3, ("a", "b", "c")))
    assert _logits(model, net(torch.randn(4, *shape))).shape == (4, 3)


@pytest.mark.parametrize("module", [lenet, resnet, cae, vae, mlp, trace_cnn])
def test_every_default_space_keeps_out_of_the_ranges_that_do_not_train(module: Any) -> None:
    """Weight decay from 0.03 up holds Adam networks at constant output, and SGD at the
    predecessor's low learning rates barely moves in a few epochs (issue 24)."""
    model = _registered(module)
    described = Space.from_mapping(model.space).describe()
    assert described["lr"] == "loguniform(0.0003, 0.005)"
    assert described["batch_size"] == "randint(32, 256)"
    assert described["optimizer"] == "'adam'"
    assert described["reg"] == "loguniform(1e-06, 0.001)"
    # The model's own keys are the same in both spaces.
    predecessor = Space.from_mapping(model.spaces["predecessor"]).describe()
    assert {k: v for k, v in predecessor.items() if k not in common.TRAINING_SPACE} == {
        k: v for k, v in described.items() if k not in common.TRAINING_SPACE
    }


@pytest.mark.parametrize("module", [lenet, resnet, cae, vae, mlp, trace_cnn])
def test_every_model_keeps_the_predecessors_space_as_a_named_variant(module: Any) -> None:
    described = Space.from_mapping(_registered(module).spaces["predecessor"]).describe()
    assert described["lr"] == "loguniform(0.0001, 0.01)"
    assert described["batch_size"] == "randint(32, 256)"
    assert described["optimizer"] == "choice(['adam', 'sgd'])"
    assert described["reg"] == "loguniform(0.0001, 0.1)"


def test_model_spaces_are_the_predecessors() -> None:
    r = Space.from_mapping(resnet.SPACE).describe()
    assert r["blocks"] == "[" + ", ".join(["randint(2, 6)"] * 4) + "]"
    assert r["channels"] == (
        "[randint(8, 32), randint(32, 64), randint(64, 128), randint(128, 256), randint(256, 512)]"
    )
    c = Space.from_mapping(cae.SPACE).describe()
    assert (c["depth"], c["latent"], c["channels"]) == (
        "randint(2, 4)",
        "randint(10, 100)",
        "randint(1, 10)",
    )
    v = Space.from_mapping(vae.SPACE).describe()
    assert (
        v["layers"] == "[randint(500, 1000), randint(100, 500), randint(50, 100), randint(10, 50)]"
    )


def test_resnet_has_the_sampled_blocks_and_widths() -> None:
    params = {"blocks": [2, 1, 3, 1], "channels": [5, 6, 7, 8, 9]}
    net = resnet.build(params, DataSpec((1, 80, 80), 2, ("a", "b")))
    blocks = [m for m in net.modules() if isinstance(m, nets_resnet.BasicBlock)]
    assert len(blocks) == 7
    assert [b.body[0].out_channels for b in blocks] == [6, 6, 7, 8, 8, 8, 9]


@pytest.mark.parametrize("module", [resnet, cae, vae])
def test_midpoint_of_each_default_space_builds_on_80x80(module: Any) -> None:
    model = _registered(module)
    net = model.build(
        fixed_params(Space.from_mapping(model.space)), DataSpec((1, 80, 80), 2, ("a", "b"))
    )
    net.eval()
    with torch.no_grad():
        assert _logits(model, net(torch.randn(2, 1, 80, 80))).shape == (2, 2)


def test_autoencoder_loss_is_reconstruction_plus_classification() -> None:
    model = _registered(cae)
    spec = DataSpec((1, 16, 16), 2, ("a", "b"))
    net = model.build({**SMALL["cae"], "recon_weight": 2.0}, spec)
    x, y = torch.rand(6, 1, 16, 16), torch.tensor([0, 1, 0, 1, 1, 0])
    out = net(x)
    assert out.recon.shape == x.shape
    expected = 2.0 * torch.mean((out.recon - x) ** 2) + torch.nn.functional.cross_entropy(
        out.logits, y
    )
    assert model.loss is not None
    loss = model.loss(out, x, y)
    assert torch.isclose(loss, expected)
    loss.backward()  # type: ignore[no-untyped-call]
    decoder_grad = [p.grad for p in net.decoder.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in decoder_grad)


def test_vae_is_deterministic_in_eval_and_its_kl_term_scales_with_beta() -> None:
    spec = DataSpec((1, 16, 16), 2, ("a", "b"))
    torch.manual_seed(0)
    net = vae.build({**SMALL["vae"], "beta": 1.0}, spec)
    x = torch.rand(5, 1, 16, 16)
    net.eval()
    first, second = net(x), net(x)
    assert torch.equal(first.recon, second.recon) and torch.equal(first.logits, second.logits)
    assert first.penalty > 0
    net.beta = 0.0
    assert net(x).penalty == 0
    net.train()
    assert not torch.equal(net(x).recon, net(x).recon)  # the code is sampled while training


@pytest.mark.parametrize(
    ("module", "params", "key"),
    [
        (resnet, {"blocks": [1, 1, 1]}, "blocks"),
        (resnet, {"channels": [4, 8, 8, 16, 0]}, "channels"),
        (cae, {"depth": 0}, "depth"),
        (cae, {"recon_weight": -1}, "recon_weight"),
        (vae, {"layers": [64]}, "layers"),
        (vae, {"beta": "big"}, "beta"),
        (mlp, {"dropout": 1.5}, "dropout"),
        (trace_cnn, {"kernel": 0}, "kernel"),
    ],
)
def test_malformed_params_name_the_model_and_the_key(
    module: Any, params: dict[str, Any], key: str
) -> None:
    spec = DataSpec((4, 64) if module is trace_cnn else (1, 32, 32), 2, ("a", "b"))
    with pytest.raises(ValueError, match=f"model '{module.NAME}'.*'{key}'"):
        module.build(params, spec)


def test_cae_refuses_a_grid_smaller_than_its_downsampling() -> None:
    with pytest.raises(ValueError, match=r"model 'cae'.*H, W >= 16"):
        cae.build({"depth": 4}, DataSpec((1, 8, 8), 2, ("a", "b")))


def _traces(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """4-PMT, 64-sample toy traces: class 0 has one sharp pulse in every PMT (a muon), class 1
    only small scattered deposits (electromagnetic), both with baseline noise."""
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 0.3, size=(n, 4, 64))
    t = np.arange(64)
    for i in range(n):
        if y[i] == 0:
            start = rng.integers(5, 40)
            shape = np.where(t >= start, np.exp(-(t - start) / 6.0), 0.0)
            x[i] += rng.uniform(2.0, 6.0, size=(4, 1)) * shape
        else:
            for _ in range(rng.integers(1, 4)):
                pmt, when = rng.integers(0, 4), rng.integers(0, 60)
                x[i, pmt, when : when + 3] += rng.uniform(0.3, 1.0)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))


def test_trace_cnn_learns_to_tag_muons() -> None:
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    x, y = _traces(600, rng)
    spec = DataSpec((4, 64), 2, ("muon", "em"))
    net = trace_cnn.build({"channels": [8, 16], "kernel": 5, "hidden": 16}, spec)
    train, val = Split(x[:450], y[:450]), Split(x[450:], y[450:])
    params = {"lr": 5e-3, "batch_size": 64, "optimizer": "adam"}
    fit(net, train, params, epochs=3, seed=0, device=torch.device("cpu"))
    probs = predict(net, val, device=torch.device("cpu"))
    assert accuracy(val.y.numpy(), probs, {}) > 0.9


def test_trace_cnn_folds_leading_axes_into_channels() -> None:
    net = trace_cnn.build({}, DataSpec((1, 4, 100), 2, ("muon", "em")))
    assert net(torch.randn(3, 1, 4, 100)).shape == (3, 2)
    with pytest.raises(ValueError, match="n_samples >= 4"):
        trace_cnn.build({}, DataSpec((4, 3), 2, ("muon", "em")))


def test_space_with_copies_lists_so_registered_spaces_are_independent() -> None:
    a: Callable[..., dict[str, Any]] = common.space_with
    first, second = a(x=["randint(1, 2)"]), a(x=["randint(1, 2)"])
    first["x"].append("3")
    assert second["x"] == ["randint(1, 2)"]
