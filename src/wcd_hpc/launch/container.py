"""Running the worker inside an Apptainer (or Singularity) image.

The wrapped command is the one a worker spec renders (``wcd-hpc worker``, or ``task-workers``
for an array task's k workers per GPU), prefixed by ``<runtime> exec --nv --bind …``; the run
root (and any site bind paths) are bound so trials can write their artifacts to the shared
filesystem from inside the image.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from wcd_hpc.launch.settings import ContainerSettings

ENV_IMAGE_DIGEST = "WCD_HPC_IMAGE_SHA256"


def wrap(command: list[str], settings: ContainerSettings, binds: list[Path]) -> list[str]:
    """``command`` as run inside the image, or unchanged when no image is configured."""
    if settings.image is None:
        return command
    wrapped = [settings.runtime, "exec"]
    if settings.gpu_flag:
        wrapped.append("--nv")
    seen: list[str] = []
    for path in [*(str(b) for b in binds), *settings.binds]:
        if path not in seen:
            seen.append(path)
            wrapped += ["--bind", path]
    return [*wrapped, settings.image, *command]


def image_digest(image: str) -> str:
    """sha256 of the image file, recorded on every trial so results name the exact software.

    The digest is cached beside the image keyed by size and mtime, because hashing a multi-GB
    image on every submission would be slow.
    """
    path = Path(image)
    stat = path.stat()
    key = f"{stat.st_size}:{stat.st_mtime_ns}"
    cache = path.with_name(path.name + ".sha256")
    try:
        cached_key, digest = cache.read_text().split()
        if cached_key == key:
            return digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    # A read-only image directory is fine: we just hash again next time.
    with contextlib.suppress(OSError):
        cache.write_text(f"{key} {digest}\n")
    return digest


def digest_env(settings: ContainerSettings) -> dict[str, str]:
    """Environment that tells workers which image they run in (empty without an image)."""
    if settings.image is None or not os.path.exists(settings.image):
        return {}
    return {ENV_IMAGE_DIGEST: image_digest(settings.image)}
