"""Journal files: damage is reported as file:line with a salvage command, and salvage recovers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import TrialState

from wcd_hpc.errors import StorageError
from wcd_hpc.queue.salvage import salvage
from wcd_hpc.store import journal
from wcd_hpc.store.journal import JournalCorrupt, check_journal, scan
from wcd_hpc.store.storage import open_storage

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
    assert done.out.read_bytes().startswith(b"".join(lines[:5]))  # then its orphans failed
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


def _rich_journal(path: Path) -> list[bytes]:
    """A real journal holding every operation Optuna writes: parameters of each distribution,
    study and trial attributes, intermediate values, complete, pruned and failed trials, an
    enqueued trial popped by ask, an added trial, a two-objective study and a deleted one."""
    storage = open_storage(f"journal:{path}")
    study = optuna.create_study(study_name="s", storage=storage)
    study.set_user_attr("experiment", {"name": "s", "trials": [1, 2.5, None]})
    storage.set_study_system_attr(study._study_id, "note", "x")

    def ask() -> optuna.Trial:
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_float("drop", 0.0, 0.5, step=0.1)
        trial.suggest_int("width", 8, 64, log=True)
        trial.suggest_categorical("opt", ["adam", None, True, 1.5])
        trial.set_user_attr("worker", {"host": "n1", "pid": 7})
        storage.set_trial_system_attr(trial._trial_id, "claimed", [1, 2])
        for step in range(3):
            trial.report(1.0 / (step + 1), step)
        return trial

    study.tell(ask(), 0.25)
    study.tell(ask(), state=optuna.trial.TrialState.PRUNED)
    study.tell(ask(), state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"lr": 0.01, "width": 16}, user_attrs={"retry": 1})
    study.tell(ask(), float("inf"))
    study.add_trial(
        optuna.trial.create_trial(
            params={"lr": 0.02, "opt": None},
            distributions={
                "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
                "opt": optuna.distributions.CategoricalDistribution(["adam", None]),
            },
            value=0.5,
            intermediate_values={0: 0.7, 1: 0.6},
            user_attrs={"imported": True},
        )
    )
    multi = optuna.create_study(
        study_name="m", directions=["minimize", "maximize"], storage=storage
    )
    multi.tell(multi.ask(), [1.0, 2.0])
    optuna.create_study(study_name="gone", storage=storage)
    optuna.delete_study(study_name="gone", storage=storage)
    return path.read_bytes().splitlines(keepends=True)


def test_every_operation_optuna_knows_is_checked() -> None:
    assert set(journal._OPERATIONS) == set(JournalOperation)


def test_check_passes_every_operation_a_real_study_writes(tmp_path: Path, cli) -> None:
    path = tmp_path / "j.log"
    lines = _rich_journal(path)
    written = {json.loads(line)["op_code"] for line in lines}
    assert written == set(JournalOperation) - {JournalOperation.DISCARD_TRIALS}
    assert scan(path).ok and scan(path).good_lines == len(lines)
    check_journal(path)
    assert len(_load(path).trials) == 5
    result = cli("journal", "check", str(path))
    assert (result.code, result.out.strip()) == (0, f"{path}: ok"), result.err


def _first(lines: list[bytes], op: JournalOperation) -> int:
    """The 0-based index of the first line holding operation ``op``."""
    return next(i for i, line in enumerate(lines) if json.loads(line)["op_code"] == op)


def _damage(path: Path, op: JournalOperation, change: Callable[[dict[str, Any]], None]) -> int:
    """Rewrite the first ``op`` of the rich journal at ``path`` with ``change``; its line number."""
    lines = _rich_journal(path)
    at = _first(lines, op)
    record = json.loads(lines[at])
    change(record)
    lines[at] = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    return at + 1


Op = JournalOperation
UNREPLAYABLE = [
    pytest.param(Op.SET_TRIAL_USER_ATTR, {"op_code": 42}, "unknown op_code 42", id="op_code"),
    pytest.param(Op.CREATE_TRIAL, {"op_code": "4"}, 'unknown op_code "4"', id="op_code-text"),
    pytest.param(
        Op.CREATE_TRIAL, {"study_id": None}, "CREATE_TRIAL without 'study_id'", id="missing"
    ),
    pytest.param(
        Op.SET_TRIAL_USER_ATTR,
        {"user_attr": None},
        "SET_TRIAL_USER_ATTR without 'user_attr'",
        id="missing-attr",
    ),
    pytest.param(
        Op.SET_TRIAL_PARAM, {"worker_id": None}, "SET_TRIAL_PARAM without 'worker_id'", id="worker"
    ),
    pytest.param(
        Op.SET_TRIAL_USER_ATTR,
        {"user_attr": ["worker", 1]},
        """SET_TRIAL_USER_ATTR 'user_attr' is not an object with one key: ["worker", 1]""",
        id="attr-list",
    ),
    pytest.param(
        Op.SET_TRIAL_STATE_VALUES,
        {"state": 7},
        "SET_TRIAL_STATE_VALUES 'state' is not a TrialState number: 7",
        id="state",
    ),
    pytest.param(
        Op.SET_TRIAL_INTERMEDIATE_VALUE,
        {"step": "1"},
        """SET_TRIAL_INTERMEDIATE_VALUE 'step' is not an integer: "1\"""",
        id="step-text",
    ),
    pytest.param(
        Op.CREATE_STUDY,
        {"directions": [3]},
        "CREATE_STUDY 'directions' is not a list of StudyDirection numbers: [3]",
        id="direction",
    ),
    pytest.param(
        Op.SET_TRIAL_PARAM,
        {"distribution": '{"name": "NoSuchDistribution", "attributes": {}}'},
        "SET_TRIAL_PARAM 'distribution' is not a distribution as JSON text: "
        '"{\\"name\\": \\"NoSuchDistribution\\", \\"attributes\\": {}}"',
        id="distribution",
    ),
    pytest.param(
        Op.SET_TRIAL_STATE_VALUES,
        {"datetime_complete": None},
        "SET_TRIAL_STATE_VALUES to COMPLETE without 'datetime_complete'",
        id="no-end-time",
    ),
]


@pytest.mark.parametrize(("op", "change", "problem"), UNREPLAYABLE)
def test_check_names_the_line_of_an_operation_optuna_cannot_replay(
    tmp_path: Path, op: JournalOperation, change: dict[str, Any], problem: str
) -> None:
    path = tmp_path / "j.log"

    def edit(record: dict[str, Any]) -> None:
        record.update(change)
        for field in [k for k, v in change.items() if v is None]:
            del record[field]

    line = _damage(path, op, edit)
    lines = path.read_bytes().splitlines(keepends=True)
    with pytest.raises(JournalCorrupt) as info:
        check_journal(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: corrupt journal: {problem} (")
    assert f"; keep the {line - 1} valid line(s) before it" in message
    done = salvage(path)
    assert done.kept == line - 1 and done.dropped == len(lines) - line + 1
    assert done.out.read_bytes().startswith(b"".join(lines[: line - 1]))
    check_journal(done.out)


def test_a_worker_opening_such_a_journal_gets_its_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    line = _damage(path, Op.CREATE_TRIAL, lambda r: r.pop("study_id"))
    with pytest.raises(KeyError):
        _plain_optuna(path)  # what every worker met before
    with pytest.raises(JournalCorrupt, match=rf"^{path}:{line}: corrupt journal: CREATE_TRIAL"):
        _load(path)


def test_journal_check_reports_an_unreplayable_operation_in_one_line(tmp_path: Path, cli) -> None:
    path = tmp_path / "j.log"
    lines = _rich_journal(path)
    with path.open("ab") as fh:
        fh.write(lines[-1].replace(b'"op_code":1,', b'"op_code":42,'))
    result = cli("journal", "check", str(path))
    assert result.code == 2, result.err
    assert result.err.count("\n") == 1
    assert result.err.startswith(
        f"error: {path}:{len(lines) + 1}: corrupt journal: unknown op_code 42; keep the "
        f"{len(lines)} valid line(s) before it"
    )


@pytest.mark.slow
def test_a_journal_cut_after_a_create_trial_line_then_salvaged_finishes_its_budget(
    tmp_path: Path, cli, testplugins, toy_experiment
) -> None:
    """The trial whose create-trial line ends the salvaged journal is RUNNING without any claim
    stamp, as is one made by plain Optuna (`study.ask()` then nothing): `sweep` reaps both
    after the claim grace period (1.5 heartbeats, 2 s here) and meets its budget."""
    import subprocess

    toy = {"WCD_HPC_PLUGINS": "toy", "WCD_HPC_HEARTBEAT_S": "2"}  # stored in the study
    exp = toy_experiment(name="cut", trials=2)
    first = cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=toy)
    assert first.code == 0, first.err
    path = tmp_path / "runs/cut/journal.log"
    lines = path.read_bytes().splitlines(keepends=True)
    creates = [
        i for i, line in enumerate(lines)
        if json.loads(line)["op_code"] == JournalOperation.CREATE_TRIAL
    ]  # fmt: skip
    path.write_bytes(b"".join(lines[: creates[-1] + 1]) + b'{"op_code": 5, "wor')
    salvaged = cli("journal", "salvage", str(path))
    assert salvaged.code == 0, salvaged.err
    swap = next(line for line in salvaged.out.splitlines() if line.strip().startswith("mv "))
    subprocess.run(swap, shell=True, check=True)  # the instructions, as printed
    study = optuna.load_study(study_name="cut", storage=open_storage(f"journal:{path}"))
    study.ask()  # plain Optuna: a RUNNING trial nobody will ever stamp

    again = cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=toy, timeout=240)
    assert again.code == 0, again.err
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    orphans = [t for t in trials if t.number in (1, 2)]
    assert [t.state for t in orphans] == [TrialState.FAIL, TrialState.FAIL]
    # The salvaged copy fails the trial running at the cut itself; the plain-Optuna orphan
    # created after the swap is reaped as never claimed. Neither is left waiting.
    causes = sorted(t.user_attrs["fail_reason"] for t in orphans)
    assert causes[0].startswith("never claimed") and causes[1].startswith("running when"), causes
