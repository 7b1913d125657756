"""Mistyped and hostile input: one short line naming where it is, exit 2, nothing created.

Found by an adversarial probe: search-space text that was meant as an expression used to be
taken as a constant string (and every trial failed at run time), and sizes no real file has
(deep nesting, megabyte values, bounds near the float limit) gave RecursionError, MemoryError or
OverflowError tracebacks. The library must raise our one-line errors, and every command that
loads an experiment (``sweep --dry-run``, ``train``) must stop before it creates anything.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from wcd_hpc.experiment.config import ConfigError, load_experiment
from wcd_hpc.experiment.resolve import resolve
from wcd_hpc.experiment.space import Fixed, SpaceError, parse_param

TOY = {"WCD_HPC_PLUGINS": "toy"}

GOOD = """\
name: hostile
dataset: toy-blobs
model: toy-mlp
metric: accuracy
trials: 2
epochs: 1
"""

#: Longest error line we accept; errors.MAX_LINE is what the CLI would cut a foreign one to.
SHORT = 300

# --- the search-space language ----------------------------------------------------------------

#: Text meant as an expression that is not one of ours: (text, fragment of the message).
NOT_OURS = {
    "subscript_instead_of_call": (
        "loguniform[1e-4, 1e-2]",
        "loguniform() takes its arguments in parentheses",
    ),
    "arithmetic_on_numbers": ("1e-4 - 1e-2", "arithmetic is not supported"),
    "arithmetic_on_a_call": ("randint(1,10)+1", "arithmetic is not supported"),
    "word_in_parentheses": ("(adam)", "expected an expression like loguniform"),
    "broken_number": ("1e-4 -", "syntax error"),
    "empty_text": ("", "empty expression"),
    "blank_text": ("   ", "empty expression"),
}

#: Sizes no real search space has: (text, fragment of the message).
HOSTILE_TEXT = {
    "very_long_expression": ("uniform(" + "1+" * 100_000 + "1, 2)", "limited to 10000"),
    "one_megabyte_constant": ("x" * 1_000_000, "limited to 10000"),
    "expression_too_deep_for_the_parser": ("uniform(" + "1+" * 4000 + "1, 2)", "too deeply"),
    "deeply_nested_lists": ("[" * 150 + "1" + "]" * 150, "nested more than 32 levels"),
    "bounds_whose_difference_overflows": ("uniform(-1e308, 1e308)", "within ±1e+300"),
    "range_near_the_float_limit": ("range(-1e308, 1e308, 1e300)", "within ±1e+300"),
    "range_with_too_many_steps": ("range(0, 1e300, 1e-300)", "more than 2**53 steps"),
    "integer_bounds_beyond_2_53": ("randint(0, " + "9" * 30 + ")", "within ±2**53"),
    "integer_too_long_to_write": ("randint(0, 0x" + "f" * 5000 + ")", "integer of 20000 bits"),
    "number_too_long_to_read": ("1" * 5000, "over 4300 digits"),
    "constant_beyond_the_float_limit": ("1" * 400, "expected a number within ±1e+300"),
    "nul_character": ("adam\0", "NUL"),
}


def space_error(value: object) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        parse_param("lr", value)
    return info.value


def assert_one_short_line(message: str) -> None:
    assert "\n" not in message, message
    assert len(message) < SHORT, message


@pytest.mark.parametrize("case", sorted(NOT_OURS))
def test_text_meant_as_an_expression_is_refused_not_taken_as_a_constant(case: str) -> None:
    text, fragment = NOT_OURS[case]
    err = space_error(text)
    assert err.key == "lr"
    assert fragment in err.message
    assert_one_short_line(str(err))


@pytest.mark.parametrize("case", sorted(HOSTILE_TEXT))
def test_hostile_search_space_text_gives_one_short_line_naming_the_parameter(case: str) -> None:
    text, fragment = HOSTILE_TEXT[case]
    err = space_error(text)
    assert str(err).startswith("lr: ")
    assert fragment in err.message
    assert_one_short_line(str(err))


def test_lists_nested_too_deeply_in_yaml_are_refused() -> None:
    value: object = 1
    for _ in range(40):
        value = [value]
    assert "nested more than 32 levels" in str(space_error(value))


def test_an_entry_too_long_to_store_and_read_back_is_refused() -> None:
    # A study stores each entry's canonical text, and every worker parses it again.
    err = space_error(["randint(2, 20)"] * 1000)
    assert "entry of 16000 characters when written out; at most 10000" in str(err)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("adam", "adam"),
        ("sgd-momentum", "sgd-momentum"),
        ("relu6", "relu6"),
        ("resnet-50", "resnet-50"),
        ("torch.optim.AdamW", "torch.optim.AdamW"),
        ("1cycle", "1cycle"),
        ("1e-4", 1e-4),
        ("-1", -1),
        ("0x10", 16),
        ("(1)", 1),
        ("None", None),
        ("True", True),
        ("true", "true"),
        ("'quoted (with brackets)'", "quoted (with brackets)"),
    ],
)
def test_plain_words_and_python_literals_stay_constants(text: str, expected: object) -> None:
    param = parse_param("p", text)
    assert param == Fixed(expected)
    assert type(param.value) is type(expected)  # type: ignore[attr-defined]


# --- experiment files, as load_experiment + resolve see them ----------------------------------

LEVELS = list(zip("abcdefgh", "bcdefghi", strict=True))  # each list: 10 of the one above

#: An otherwise good experiment file with one problem: (text, start of the error).
FILES = {
    "subscript_instead_of_call": (
        GOOD + "param_space:\n  lr: loguniform[1e-4, 1e-2]\n",
        "bad.yaml:8: param_space.lr: loguniform() takes its arguments in parentheses",
    ),
    "arithmetic_on_numbers": (
        GOOD + "param_space:\n  lr: 1e-4 - 1e-2\n",
        "bad.yaml:8: param_space.lr: arithmetic is not supported",
    ),
    "arithmetic_on_a_call": (
        GOOD + "param_space:\n  hidden: randint(1,10)+1\n",
        "bad.yaml:8: param_space.hidden: arithmetic is not supported",
    ),
    "empty_expression": (
        GOOD + "param_space:\n  lr: ''\n",
        "bad.yaml:8: param_space.lr: empty expression",
    ),
    "very_long_expression": (
        GOOD + "param_space:\n  lr: uniform(" + "1+" * 100_000 + "1, 2)\n",
        "bad.yaml:8: param_space.lr: text of 200013 characters",
    ),
    "one_megabyte_constant": (
        GOOD + "param_space:\n  optimizer: " + "x" * 1_000_000 + "\n",
        "bad.yaml:8: param_space.optimizer: text of 1000000 characters",
    ),
    "bounds_whose_difference_overflows": (
        GOOD + "param_space:\n  lr: uniform(-1e308, 1e308)\n",
        "bad.yaml:8: param_space.lr: uniform() bounds must lie within ±1e+300",
    ),
    "deeply_nested_yaml": (
        GOOD.replace("name: hostile", "name: " + "[" * 10_000),
        "bad.yaml:1: lists and mappings nested more than 64 levels deep",
    ),
    "alias_bomb": (  # 10**9 values in 11 lines, under a key that takes any values
        GOOD.replace(
            "dataset: toy-blobs",
            "dataset:\n  name: toy-blobs\n  params:\n    a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(f"    {b}: &{b} [{', '.join(['*' + a] * 10)}]\n" for a, b in LEVELS),
        ),
        "bad.yaml:5: too large: more than 100000 values (each alias counted in full)",
    ),
    "integer_too_long_to_read": (
        GOOD + "seed: " + "1" * 5000 + "\n",
        "bad.yaml:7: invalid YAML: cannot read a value: Exceeds the limit",
    ),
}


def registry() -> SimpleNamespace:
    def entry(**attrs: object) -> SimpleNamespace:
        return SimpleNamespace(obj=SimpleNamespace(**attrs))

    space = {"lr": "loguniform(1e-3, 1e-1)", "optimizer": "adam", "hidden": "randint(4, 16)"}
    return SimpleNamespace(
        models={"toy-mlp": entry(space=space)},
        datasets={"toy-blobs": entry()},
        metrics={"accuracy": entry(direction="maximize")},
    )


@pytest.mark.parametrize("case", sorted(FILES))
def test_experiment_file_with_one_problem_is_refused_before_anything_is_created(
    tmp_path: Path, case: str
) -> None:
    text, expected = FILES[case]
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        resolve(load_experiment(tmp_path / "bad.yaml"), registry())
    message = str(info.value).replace(str(tmp_path / "bad.yaml"), "bad.yaml")
    assert message.startswith(expected), message
    assert_one_short_line(message)


def test_an_empty_set_expression_is_refused_against_the_flag(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    with pytest.raises(ConfigError) as info:
        load_experiment(tmp_path / "good.yaml", overrides=["param_space.lr="])
    assert str(info.value).startswith("--set: param_space.lr: empty expression")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("seed=" + "[" * 10_000, "--set: seed: cannot read '[[[["),
        ("seed=2024-13-01", "--set: seed: cannot read '2024-13-01': cannot read a value"),
        ("x" * 100_000 + "=1", "--set: xxxx"),
    ],
)
def test_hostile_set_values_are_refused_in_one_short_line(
    tmp_path: Path, override: str, expected: str
) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    with pytest.raises(ConfigError) as info:
        load_experiment(tmp_path / "good.yaml", overrides=[override])
    assert str(info.value).startswith(expected)
    assert_one_short_line(str(info.value))


def test_keys_that_would_break_the_line_are_quoted(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(GOOD + '"a\\nb": 1\n')
    with pytest.raises(ConfigError) as info:
        load_experiment(tmp_path / "bad.yaml")
    assert "bad.yaml:7: 'a\\nb': unknown key" in str(info.value)
    assert_one_short_line(str(info.value).replace(str(tmp_path), ""))


# --- the command line -------------------------------------------------------------------------

CLI_CASES = [
    ("sweep", "--dry-run", case)
    for case in (
        "subscript_instead_of_call",
        "arithmetic_on_numbers",
        "arithmetic_on_a_call",
        "empty_expression",
        "very_long_expression",
        "one_megabyte_constant",
        "bounds_whose_difference_overflows",
        "deeply_nested_yaml",
        "alias_bomb",
    )
] + [
    ("train", None, "arithmetic_on_a_call"),
    ("train", None, "bounds_whose_difference_overflows"),
    ("train", None, "deeply_nested_yaml"),
]


@pytest.mark.parametrize(("command", "flag", "case"), CLI_CASES)
def test_commands_print_one_error_line_and_create_nothing(
    cli, testplugins, tmp_path, command: str, flag: str | None, case: str
) -> None:
    text, expected = FILES[case]
    (tmp_path / "bad.yaml").write_text(text)
    res = cli(command, "bad.yaml", *([flag] if flag else []), plugins=testplugins, env=TOY)
    assert "Traceback" not in res.err, res.err[-2000:]
    assert res.code == 2, res.err
    assert res.err.startswith(f"error: {expected}") and res.err.count("\n") == 1, res.err
    assert not (tmp_path / "runs").exists()


def test_an_empty_set_expression_on_the_command_line(cli, testplugins, tmp_path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    res = cli(
        "sweep", "good.yaml", "--dry-run", "--set", "param_space.lr=", plugins=testplugins, env=TOY
    )
    assert res.code == 2, res.err
    assert res.err.startswith("error: --set: param_space.lr: empty expression"), res.err
    assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert not (tmp_path / "runs").exists()


# --- numbers no machine could honour --------------------------------------------------------

HUGE = "100000000000000000000"  # 10**20


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ([f"seed={HUGE}"], "--set: seed: expected an integer >= 0 of at most 4,294,967,295"),
        ([f"trials={HUGE}"], "--set: trials: expected a positive integer of at most 1,000,000"),
        ([f"epochs={HUGE}"], "--set: epochs: expected a positive integer of at most 100,000"),
        (["resources.gpus=1000000"], "--set: resources.gpus: expected an integer >= 0 of at"),
        (
            ["workers=1000", "executor=local"],
            "--set: workers: expected at most 256 local workers (processes on this machine), "
            "got 1,000",
        ),
        ([f"dataset.params.events={HUGE}"], "parameter 'events' must be an integer between 1"),
        ([f"dataset.params.seed={HUGE}"], "parameter 'seed' must be an integer between 0 and"),
    ],
)
def test_numbers_no_machine_could_honour_are_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sets: list[str], expected: str
) -> None:
    from typer.testing import CliRunner

    from wcd_hpc.cli import PROG_NAME, app

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "huge.yaml"
    path.write_text(
        "name: huge\ndataset: {name: footprint-sim, params: {events: 200}}\nmodel: mlp\n"
        "trials: 2\nepochs: 1\n",
        encoding="utf-8",
    )
    args = ["sweep", str(path), "--dry-run", *(a for s in sets for a in ("--set", s))]
    res = CliRunner().invoke(app, args, prog_name=PROG_NAME)
    assert isinstance(res.exception, ConfigError), res.output
    assert expected in str(res.exception)
    assert len(str(res.exception)) < SHORT
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("kind", ["footprints", "traces"])
@pytest.mark.parametrize("flag", ["--events", "--seed"])
def test_simulate_refuses_a_number_too_large_for_a_file_in_one_usage_line(
    tmp_path: Path, kind: str, flag: str
) -> None:
    from typer.testing import CliRunner

    from wcd_hpc.cli import PROG_NAME, app

    out = tmp_path / "sim.h5"
    res = CliRunner().invoke(
        app, ["simulate", kind, "-o", str(out), flag, HUGE], prog_name=PROG_NAME
    )
    assert res.exit_code == 2, res.output  # click's usage error, not an OverflowError
    assert "less than or equal to" in res.output
    assert not out.exists()
