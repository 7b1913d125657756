"""What a study records of its experiment holds the storage URL without its password."""

from __future__ import annotations

import json

from wcd_hpc.experiment.config import load_experiment
from wcd_hpc.queue.study import stored_experiment

PASSWORD = "s3cr:e@t"
WITH_PASSWORD = f"postgresql://wcd:{PASSWORD}@db.example:5432/wcd?sslmode=require"


def test_the_stored_storage_url_drops_the_password_instead_of_masking_it(tmp_path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("name: e\ndataset: footprint-sim\nmodel: lenet\ntrials: 1\n")
    exp = load_experiment(path, overrides=[f"storage={WITH_PASSWORD}"])
    stored = stored_experiment(exp)
    # A URL that works where ~/.pgpass holds the password; no password, masked or not.
    assert stored["storage"] == "postgresql://wcd@db.example:5432/wcd?sslmode=require"
    text = json.dumps(stored)
    assert PASSWORD not in text and "***" not in text
    assert exp.storage == WITH_PASSWORD  # the experiment itself is left as it was
