"""Setting environment variables for the duration of a block, and putting them back after.

Two places hand settings to code that reads them only from the environment: ``sbatch`` exports
the submitting process's environment to the job (the storage URL, the image digest), and MLflow
reads its settings at each call. Both must leave the caller's environment as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def environment(values: Mapping[str, str], *, override: bool = True) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block (only unset ones if not ``override``)."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if override:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
