"""``wcd-hpc`` and ``python -m wcd_hpc`` (local workers are started this way).

The entry point lives outside :mod:`wcd_hpc.cli` so that the CLI's imports (torch among them) and
the plugin registry load with the garbage collector paused (see :mod:`wcd_hpc.startup`).
"""

from __future__ import annotations

from wcd_hpc.startup import preload_cli


def main() -> None:
    preload_cli()
    from wcd_hpc.cli import main as run_cli

    run_cli()


if __name__ == "__main__":
    main()
