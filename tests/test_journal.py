"""Journal files: damage is reported as file:line with a salvage command, and salvage recovers."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from wcd_hpc.errors import StorageError
from wcd_hpc.queue.journal import JournalCorrupt, check_journal, salvage, scan
from wcd_hpc.queue.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _journal(path: Path, trials: int = 3) -> list[bytes]:
    """A real journal with one study and ``trials`` complete trials; returns its lines."""
    study = optuna.create_study(study_name="s", storage=open_storage(f"journal:{path}"))
    for i in range(trials):
        study.tell(study.ask(), float(i))
    return path.read_bytes().splitlines(keepends=True)


def _plain_optuna(path: Path) -> optuna.Study:
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    return optuna.load_study(study_name="s", storage=JournalStorage(backend))


def _load(path: Path) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=open_storage(f"journal:{path}"))


def test_plain_optuna_opens_a_partial_last_line_but_breaks_on_the_next_write(
    tmp_path: Path,
) -> None:
    """The behaviour this module guards against, observed on Optuna itself."""
    path = tmp_path / "j.log"
    _journal(path)
    path.write_bytes(path.read_bytes()[:-7])
    study = _plain_optuna(path)
    assert len(study.trials) == 3  # the fragment is skipped on read...
    with pytest.raises(Exception):  # noqa: B017 - Optuna raises different types here
        study.tell(study.ask(), 1.0)
        _plain_optuna(path)  # ...but the next append glues onto it and the log is broken


def test_plain_optuna_fails_on_garbage_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    lines = _journal(path)
    path.write_bytes(b"".join([*lines[:3], b"garbage\n", *lines[3:]]))
    with pytest.raises(ValueError):
        _plain_optuna(path)


def test_partial_last_line_is_reported_with_line_and_salvage_command(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    lines = _journal(path)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(JournalCorrupt) as info:
        open_storage(f"journal:{path}")
    message = str(info.value)
    assert message.startswith(f"{path}:{len(lines)}: corrupt journal: partial last line")
    assert f"wcd-hpc journal salvage {path}" in message
    assert "\n" not in message
    assert isinstance(info.value, StorageError)


def test_garbage_in_the_middle_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    lines = _journal(path)
    path.write_bytes(b"".join([*lines[:3], b"\x00\x01garbage\n", *lines[3:]]))
    with pytest.raises(JournalCorrupt, match=rf"^{path}:4: corrupt journal: not JSON"):
        open_storage(f"journal:{path}")


def test_json_that_is_not_a_journal_record_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    _journal(path)
    with path.open("ab") as fh:
        fh.write(b"[1, 2]\n")
    with pytest.raises(JournalCorrupt, match="not an Optuna journal record"):
        check_journal(path)


def test_damage_appearing_while_a_study_is_open_is_reported_on_the_next_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.log"
    lines = _journal(path)
    study = _load(path)
    path.write_bytes(b"".join([*lines[:2], b"{oops\n", *lines[2:]]))
    other = tmp_path / "other.log"  # a fresh process would replay from the start
    other.write_bytes(path.read_bytes())
    with pytest.raises(JournalCorrupt, match=rf"{other}:3: corrupt journal"):
        _load(other)
    assert len(study.trials) == 3  # the open study replayed before the damage and keeps going


def test_a_write_after_a_fragment_is_refused_so_the_log_stays_recoverable(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    lines = _journal(path)
    study = _load(path)
    with path.open("ab") as fh:
        fh.write(b'{"op_code": 4, "wor')  # a writer died mid-line after we opened
    before = path.read_bytes()
    with pytest.raises(JournalCorrupt, match="partial last line"):
        study.tell(study.ask(), 5.0)
    assert path.read_bytes() == before
    assert scan(path).good_lines == len(lines)


def test_salvage_keeps_the_valid_prefix_in_a_new_file_and_leaves_the_original(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.log"
    lines = _journal(path, trials=4)
    damaged = b"".join([*lines[:5], b"garbage\n", *lines[5:]])
    path.write_bytes(damaged)
    done = salvage(path)
    assert path.read_bytes() == damaged
    assert done.out == tmp_path / "j.log.salvaged"
    assert done.kept == 5 and done.dropped == len(lines) - 5 + 1
    assert done.out.read_bytes() == b"".join(lines[:5])
    check_journal(done.out)
    _load(done.out)  # opens as a study again
    with pytest.raises(StorageError, match="already exists"):
        salvage(path)


def test_salvage_command_prints_how_to_use_the_result(tmp_path: Path, cli) -> None:
    path = tmp_path / "j.log"
    _journal(path)
    path.write_bytes(path.read_bytes()[:-3])
    new = tmp_path / "fixed.log"
    result = cli("journal", "salvage", str(path), "--out", str(new))
    assert result.code == 0, result.err
    assert str(new) in result.out
    assert f"mv {new} {path}" in result.out
    check_journal(new)
    bad = cli("journal", "check", str(path))
    assert bad.code != 0
    assert bad.err.count("\n") == 1 and f"{path}:" in bad.err
    assert cli("journal", "check", str(new)).code == 0
