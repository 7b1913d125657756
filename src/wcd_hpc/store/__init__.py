"""Where studies live: storage URLs, opening a storage, and keeping it sound under load.

A layer of its own, below :mod:`wcd_hpc.queue` (the study as the work queue) and above the
plugins: it knows URLs (parsing and masking, :mod:`~wcd_hpc.store.urls`), journal files (their
integrity, snapshots and NFS-safe lock file), databases (retries across a lost connection) and
Optuna's gRPC proxy (client and ``storage serve``), but nothing of budgets, claims or trial
files. ``queue`` builds on it; nothing here imports ``queue``, so a storage can be opened,
checked or served without the queue's vocabulary (the few names it writes itself are in
:mod:`~wcd_hpc.store.schema`).
"""
