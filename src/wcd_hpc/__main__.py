"""``wcd-hpc`` and ``python -m wcd_hpc`` (local workers are started this way).

The entry point lives outside :mod:`wcd_hpc.cli` so that the CLI's imports (torch among them) and
the plugin registry load with the garbage collector paused (see :mod:`wcd_hpc.startup`).
"""

from __future__ import annotations

from wcd_hpc.startup import paused_gc


def main() -> None:
    with paused_gc():
        from wcd_hpc import cli
        from wcd_hpc.plugins import get_registry

        get_registry()
    cli.main()


if __name__ == "__main__":
    main()
