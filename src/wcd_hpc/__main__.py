"""``python -m wcd_hpc``: the same CLI as ``wcd-hpc`` (local workers are started this way)."""

from wcd_hpc.cli import main

if __name__ == "__main__":
    main()
