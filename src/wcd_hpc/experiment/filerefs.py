"""File references in an experiment: ``model: ./my_net.py:MyNet`` and the checksum that pins one.

What such a file holds is read by :mod:`wcd_hpc.experiment.modelfiles`; here only what the
experiment says. ``model.sha256`` (likewise ``dataset.sha256``, ``metric.sha256``, keys of the
table in :mod:`wcd_hpc.experiment.keys`) names the content the file must have, as a prefix of
its sha256: a resumed sweep whose file changed is refused unless it names the new content this
way (``--set model.sha256=9b1c2d3e``), so that an edit is never mixed into a study by accident,
and a later edit needs a new acknowledgement.
"""

from __future__ import annotations

import re
from typing import Any

from wcd_hpc.experiment.checks import Rule
from wcd_hpc.experiment.sources import Fail, got

KINDS = ("model", "dataset", "metric")
_HEX = re.compile(r"[0-9a-f]{8,64}")


def is_file_reference(name: object) -> bool:
    """Whether a ``model``/``dataset``/``metric`` name is a file reference ``PATH.py:NAME``."""
    return isinstance(name, str) and name.rpartition(":")[0].endswith(".py")


def _checksum(value: Any, key: str, fail: Fail) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX.fullmatch(value.lower()):
        message = "expected 8 to 64 hex digits of the file's sha256 (quoted in YAML)"
        raise fail(key, f"{message}, got {got(value)}")
    return value.lower()


#: The rule of ``<kind>.sha256``: a hex prefix of the file's sha256, or null (any content).
SHA256 = Rule("8 to 64 hex digits (a prefix of the file's sha256), or null", _checksum)
