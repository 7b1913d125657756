"""The training loop: a deliberately plain PyTorch loop with hooks at epoch boundaries.

It indexes in-memory tensors with a seeded permutation instead of a ``DataLoader`` (for tensors
that already sit in memory a DataLoader only adds per-batch Python overhead), on the GPU when the
worker put its data there (the permutation is drawn on the CPU, so a run gives the same batches
wherever its data live), trains under the autocast precision the worker chose
(:mod:`wcd_hpc.engine.device`), and checks for a stop request between batches so a signal never
waits for a whole epoch. ``benchmarks/overhead.py`` compares its throughput with a hand-written
loop; ``benchmarks/gpu.py`` measures the GPU settings.

Inputs too big for memory come as :class:`~wcd_hpc.api.LazyInputs` (an HDF5 file read on
demand): the loop then shuffles whole blocks of consecutive events, reads a window of 32 blocks
and shuffles the events inside it, so at most a window (~1,000 events) is in memory while the
batches stay well mixed. Towards a GPU each window is pinned once, so that batch copies run
asynchronously. ``benchmarks/data.py`` measures its memory and loading throughput.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from wcd_hpc.api import LazyInputs, LogitsFn, LossFn, Split
from wcd_hpc.engine.device import autocast_dtype, choose_precision, grad_scaler

WINDOW_BLOCKS = 32  # blocks of lazily read events shuffled together (32 × 32 footprints ≈ 26 MB)


#: ``(outputs, x, loss)`` of the first batch a run trains: a check that may raise.
FirstBatch = Callable[[Any, torch.Tensor, torch.Tensor], None]


class Interrupted(Exception):
    """Raised between batches when the worker was asked to stop (SIGTERM, SIGINT, SIGUSR2)."""


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    seconds: float
    samples_per_s: float


def batch_size_of(params: Mapping[str, Any]) -> int:
    """The events per optimizer step: the trial's ``batch_size``, 64 when its space has none."""
    return int(params.get("batch_size", 64))


def report_marks(n: int, fraction: float) -> list[int]:
    """Samples into an epoch of ``n`` events at which a report falls inside it: every
    ``fraction`` of the epoch (0.25: at 25 %, 50 % and 75 %; the epoch's end reports anyway)."""
    if fraction >= 1 or n <= 0:
        return []
    count = math.ceil(1 / fraction - 1e-9)
    return sorted({math.ceil(k * fraction * n - 1e-9) for k in range(1, count)} - {0, n})


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(model: nn.Module, params: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Adam or SGD (momentum 0.9) with ``reg`` as L2 weight decay, as the predecessor used."""
    lr = float(params.get("lr", 1e-3))
    decay = float(params.get("reg", 0.0))
    name = str(params.get("optimizer", "adam")).lower()
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)
    if name != "adam":
        raise ValueError(f"optimizer: expected one of adam, adamw, sgd, got {name!r}")
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=decay)


def default_loss(outputs: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, y)


def default_logits(outputs: Any) -> torch.Tensor:
    return outputs  # type: ignore[no-any-return]


def logits_problem(logits: object, batch: int, num_classes: int) -> str | None:
    """What is wrong with a model's class logits for a batch of ``batch`` events, or None.

    The one check of the output contract: the training loop runs it on its first batch
    (:func:`train_epoch`'s ``first_batch``) and the conformance kit (:mod:`wcd_hpc.testing`) on
    its tiny one. A wrong number of classes would otherwise train without a word (7 logits on 2
    classes: cross-entropy only needs labels below 7) and predict classes the data do not have.
    """
    expected = (batch, num_classes)
    if isinstance(logits, torch.Tensor) and tuple(logits.shape) == expected:
        return None
    got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
    return f"class logits must have shape {expected} (batch, classes), got {got}"


def _lazy_batches(
    x: LazyInputs, y: torch.Tensor, batch_size: int, generator: torch.Generator, pin: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Seeded batches from lazily read inputs: shuffled blocks, shuffled events per window.

    With ``pin`` each window is copied once into page-locked memory: its batches are slices of
    it, so their copies to the GPU can overlap the previous step.
    """
    n, block = len(x), max(1, int(x.block))
    order = torch.randperm(-(-n // block), generator=generator).tolist()
    carry_x, carry_y = x[0:0], y[0:0]
    for w in range(0, len(order), WINDOW_BLOCKS):
        group = sorted(order[w : w + WINDOW_BLOCKS])
        runs: list[list[int]] = []
        for b in group:  # merge neighbouring blocks into one read
            if runs and runs[-1][1] == b:
                runs[-1][1] = b + 1
            else:
                runs.append([b, b + 1])
        xs = torch.cat([x[a * block : min(n, c * block)] for a, c in runs])
        ys = torch.cat([y[a * block : min(n, c * block)] for a, c in runs])
        perm = torch.randperm(len(ys), generator=generator)
        xs, ys = torch.cat([carry_x, xs[perm]]), torch.cat([carry_y, ys[perm]])
        if pin:
            xs, ys = xs.pin_memory(), ys.pin_memory()
        full = len(ys) - len(ys) % batch_size
        for start in range(0, full, batch_size):
            yield xs[start : start + batch_size], ys[start : start + batch_size]
        carry_x, carry_y = xs[full:], ys[full:]
    if len(carry_y):
        yield carry_x, carry_y


def _batches(
    split: Split, batch_size: int, generator: torch.Generator, pin: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Seeded batches of ``split``, gathered where its tensors are (host or GPU)."""
    if isinstance(split.x, torch.Tensor):
        order = torch.randperm(len(split), generator=generator)
        order_x = order.to(split.x.device)  # an index must be on its tensor's device
        order_y = order_x if split.y.device == split.x.device else order.to(split.y.device)
        for start in range(0, len(split), batch_size):
            end = start + batch_size
            yield split.x[order_x[start:end]], split.y[order_y[start:end]]
    else:
        yield from _lazy_batches(split.x, split.y, batch_size, generator, pin)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    split: Split,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    loss_fn: LossFn = default_loss,
    stop: Callable[[], bool] = lambda: False,
    scaler: torch.amp.GradScaler | None = None,
    autocast: torch.dtype | None = None,
    first_batch: FirstBatch | None = None,
    marks: Sequence[int] = (),
    during: Callable[[int], None] | None = None,
) -> float:
    """One pass over ``split`` in a seeded random order; returns the mean training loss.

    ``during(mark)`` is called after the first batch that brings the samples trained in this
    epoch to each of ``marks`` (or past it): the reports inside an epoch, at the mark's step so
    that trials with different batch sizes report at the same steps.

    ``autocast`` is the dtype of the forward pass and loss (None: fp32); ``scaler`` scales the
    loss of fp16 steps. ``first_batch(outputs, x, loss)`` sees the first batch before its step
    and may raise (a wrong output shape, a loss that is not finite).
    """
    model.train()
    n = len(split)
    total = torch.zeros((), device=device)
    pin = device.type == "cuda"
    done, upcoming = 0, list(marks)
    for x_batch, y_batch in _batches(split, batch_size, generator, pin):
        if stop():
            raise Interrupted
        xb = x_batch.to(device, non_blocking=True)  # no copy when the data are on the device
        yb = y_batch.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, autocast):
            outputs = model(xb)
            loss = loss_fn(outputs, xb, yb)
        if first_batch is not None:
            first_batch(outputs, xb, loss)
            first_batch = None
        if scaler is not None:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        total += loss.detach() * len(y_batch)
        done += len(y_batch)
        if upcoming and done >= upcoming[0]:
            reached = max(m for m in upcoming if m <= done)
            upcoming = [m for m in upcoming if m > done]
            if during is not None:
                during(reached)  # at the mark, not the batch's end: the same steps whatever
                model.train()  # the batch size; and a report evaluates in eval mode
    return float(total.item()) / max(n, 1)


def _autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[object]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def predict(
    model: nn.Module,
    split: Split,
    *,
    device: torch.device,
    batch_size: int = 512,
    logits_fn: LogitsFn = default_logits,
    precision: str = "fp32",
) -> np.ndarray:
    """Class probabilities (N, classes) for ``split``, in evaluation mode, under the autocast
    of ``precision`` (fp32, bf16, fp16) as in training."""
    model.eval()
    out = []
    dtype = autocast_dtype(precision)
    for start in range(0, len(split), batch_size):
        xb = split.x[start : start + batch_size].to(device)
        with _autocast(device, dtype):
            logits = logits_fn(model(xb)).float()
        out.append(torch.softmax(logits, dim=1).cpu())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()


def fit(
    model: nn.Module,
    train: Split,
    params: Mapping[str, Any],
    *,
    epochs: int,
    seed: int,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None = None,
    start_epoch: int = 0,
    loss_fn: LossFn = default_loss,
    after_epoch: Callable[[EpochStats], None] = lambda s: None,
    stop: Callable[[], bool] = lambda: False,
    precision: str = "auto",
    first_batch: FirstBatch | None = None,
    report_every: float = 1.0,
    during_epoch: Callable[[int, int], None] | None = None,
) -> torch.optim.Optimizer:
    """Train for epochs ``start_epoch+1 … epochs``; ``after_epoch`` may raise to prune.

    The permutation generator is seeded per epoch, so a run resumed at epoch k sees the same
    batches as one that never stopped. ``precision`` is ``auto``, ``fp32``, ``bf16`` or
    ``fp16`` (:func:`wcd_hpc.engine.device.choose_precision`). ``first_batch`` checks the first
    batch this call trains (a resumed run's too), see :func:`train_epoch`.
    """
    model.to(device)
    opt = optimizer or make_optimizer(model, params)
    batch_size = batch_size_of(params)
    chosen = choose_precision(precision, device)
    scaler = grad_scaler(chosen, device)
    marks = report_marks(len(train), report_every)
    for epoch in range(start_epoch + 1, epochs + 1):
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        began = time.perf_counter()
        loss = train_epoch(
            model,
            opt,
            train,
            batch_size=batch_size,
            generator=gen,
            device=device,
            loss_fn=loss_fn,
            stop=stop,
            scaler=scaler,
            autocast=autocast_dtype(chosen),
            first_batch=first_batch if epoch == start_epoch + 1 else None,
            marks=marks,
            during=functools.partial(during_epoch, epoch) if during_epoch else None,
        )
        seconds = time.perf_counter() - began
        after_epoch(EpochStats(epoch, loss, seconds, len(train) / max(seconds, 1e-9)))
    return opt
