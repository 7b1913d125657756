"""File references in an experiment: ``model: ./my_net.py:MyNet`` and the checksum that pins one.

What such a file holds is read by :mod:`wcd_hpc.experiment.modelfiles`; here only what the
experiment says. ``model.sha256`` (likewise ``dataset.sha256``, ``metric.sha256``) names the
content the file must have, as a prefix of its sha256: a resumed sweep whose file changed is
refused unless it names the new content this way (``--set model.sha256=9b1c2d3e``), so that an
edit is never mixed into a study by accident, and a later edit needs a new acknowledgement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from wcd_hpc.experiment.sources import Fail, got

KINDS = ("model", "dataset", "metric")
_HEX = re.compile(r"[0-9a-f]{8,64}")


def is_file_reference(name: object) -> bool:
    """Whether a ``model``/``dataset``/``metric`` name is a file reference ``PATH.py:NAME``."""
    return isinstance(name, str) and name.rpartition(":")[0].endswith(".py")


def checksums(values: Mapping[str, Any], fail: Fail) -> dict[str, str]:
    """Kind -> the lower-case hex prefix its file must have, from ``<kind>.sha256``."""
    found = {}
    for kind in KINDS:
        section = values.get(kind)
        if not isinstance(section, Mapping) or section.get("sha256") is None:
            continue
        value = section["sha256"]
        if not is_file_reference(section.get("name")):
            raise fail(f"{kind}.sha256", "applies only to a file reference PATH.py:NAME")
        if not isinstance(value, str) or not _HEX.fullmatch(value.lower()):
            message = "expected 8 to 64 hex digits of the file's sha256 (quoted in YAML)"
            raise fail(f"{kind}.sha256", f"{message}, got {got(value)}")
        found[kind] = value.lower()
    return found
