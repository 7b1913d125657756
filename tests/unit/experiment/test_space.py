"""Tests of the search-space language (wcd_hpc.experiment.space)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from wcd_hpc.experiment.space import (
    Choice,
    Fixed,
    ListOf,
    LogUniform,
    RandInt,
    Range,
    Space,
    SpaceError,
    Uniform,
    parse_param,
)


def error_of(key: str, value: object) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        parse_param(key, value)
    return info.value


# --- parsing each form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("uniform(0, 1)", Uniform(0.0, 1.0)),
        ("loguniform(1e-4, 1e-2)", LogUniform(1e-4, 1e-2)),
        ("randint(32, 256)", RandInt(32, 256)),
        ("randint(-1, 1)", RandInt(-1, 1)),
        ("randint(0x10, 1_000)", RandInt(16, 1000)),
        ("range(0, 10, 2)", Range(0, 10, 2)),
        ("range(1, 5)", Range(1, 5, 1)),
        ("range(0.1, 0.5, 0.1)", Range(0.1, 0.5, 0.1)),
        ("choice(['adam', 'sgd'])", Choice(("adam", "sgd"))),
        ("choice([1, -2.5, True, None, 'x'])", Choice((1, -2.5, True, None, "x"))),
        ("  uniform( -1 , +1 )  ", Uniform(-1.0, 1.0)),
    ],
)
def test_each_function_parses_to_its_param(text: str, expected: object) -> None:
    assert parse_param("p", text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e-4", 1e-4),
        ("-1", -1),
        ("0x10", 16),
        ("1_000", 1000),
        ("+2.5", 2.5),
        (3, 3),
        (0.5, 0.5),
        (True, True),
        (None, None),
        ("adam", "adam"),
        ("'quoted'", "quoted"),
        ("sgd-momentum", "sgd-momentum"),
        ("hello world", "hello world"),
    ],
)
def test_constants_become_fixed_values(value: object, expected: object) -> None:
    param = parse_param("p", value)
    assert isinstance(param, Fixed)
    assert param.value == expected
    assert type(param.value) is type(expected)


def test_true_and_false_are_booleans_so_their_canonical_text_parses_back() -> None:
    for text, value in (("True", True), ("False", False)):
        param = parse_param("p", text)
        assert param == Fixed(value)
        assert parse_param("p", param.describe()) == param


def test_list_expression_string_becomes_list_of_params() -> None:
    assert parse_param("channels", "[randint(2, 20), randint(2, 20)]") == ListOf(
        (RandInt(2, 20), RandInt(2, 20))
    )


def test_yaml_list_items_are_parsed_one_by_one() -> None:
    param = parse_param("layers", ["randint(2, 20)", 64, "relu", "[1, 2]"])
    assert param == ListOf((RandInt(2, 20), Fixed(64), Fixed("relu"), ListOf((Fixed(1), Fixed(2)))))


def test_bare_names_inside_a_list_expression_are_strings() -> None:
    assert parse_param("acts", "[relu, 'tanh']") == ListOf((Fixed("relu"), Fixed("tanh")))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("loguniform(1e-4, 1e-2)", "loguniform(0.0001, 0.01)"),
        ("uniform(0, 1)", "uniform(0.0, 1.0)"),
        ("randint(2, 0x14)", "randint(2, 20)"),
        ("range(0, 10, 2)", "range(0, 10, 2)"),
        ("choice(['adam', 'sgd'])", "choice(['adam', 'sgd'])"),
        ("[randint(2, 20), 3]", "[randint(2, 20), 3]"),
        ("adam", "'adam'"),
    ],
)
def test_describe_gives_canonical_text_that_parses_back(text: str, canonical: str) -> None:
    param = parse_param("p", text)
    assert param.describe() == canonical
    assert parse_param("p", canonical) == param


# --- errors -----------------------------------------------------------------------------------


def test_space_error_is_a_value_error_with_key_and_message() -> None:
    err = SpaceError("lr", "bad")
    assert isinstance(err, ValueError)
    assert (err.key, err.message, str(err)) == ("lr", "bad", "lr: bad")


def test_unknown_function_lists_known_ones_and_suggests() -> None:
    err = error_of("lr", "logunifrom(1e-4, 1e-2)")
    assert err.key == "lr"
    assert "unknown function 'logunifrom'" in str(err)
    assert "did you mean 'loguniform'?" in str(err)
    assert "choice, loguniform, randint, range, uniform" in str(err)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("uniform(1)", "uniform() takes 2 arguments (low, high), got 1"),
        ("randint(1, 2, 3)", "randint() takes 2 arguments (low, high), got 3"),
        ("range(1)", "range() takes 2 or 3 arguments"),
        ("choice('a', 'b')", "choice() takes one list of options"),
        ("uniform(low=0, high=1)", "positional arguments only"),
    ],
)
def test_wrong_arity_is_rejected(text: str, fragment: str) -> None:
    assert fragment in str(error_of("p", text))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("uniform('a', 1)", "uniform() bounds must be numbers, got \"'a'\""),
        ("loguniform(x, 1)", "loguniform() bounds must be numbers, got 'x'"),
        ("uniform(randint(1, 2), 3)", "bounds must be numbers"),
        ("uniform(True, 3)", "bounds must be numbers"),
        ("randint(1.5, 3)", "randint() bounds must be integers"),
        ("uniform(0, 1e999)", "bounds must be finite"),
    ],
)
def test_non_numeric_bounds_are_rejected(text: str, fragment: str) -> None:
    assert fragment in str(error_of("p", text))


@pytest.mark.parametrize(
    "text", ["uniform(1, 1)", "uniform(2, 1)", "loguniform(0.1, 0.1)", "loguniform(1, 0.5)"]
)
def test_continuous_ranges_need_low_below_high(text: str) -> None:
    assert "low must be below high" in str(error_of("p", text))


@pytest.mark.parametrize("text", ["randint(3, 2)", "range(5, 1, 1)"])
def test_integer_ranges_need_low_not_above_high(text: str) -> None:
    assert "low must not exceed high" in str(error_of("p", text))


def test_single_point_randint_and_range_are_allowed() -> None:
    assert parse_param("p", "randint(4, 4)") == RandInt(4, 4)
    assert parse_param("p", "range(4, 4, 1)") == Range(4, 4, 1)


@pytest.mark.parametrize("text", ["loguniform(0, 1)", "loguniform(-1, 1)"])
def test_loguniform_with_non_positive_low_is_rejected(text: str) -> None:
    assert "loguniform() low must be positive" in str(error_of("lr", text))


@pytest.mark.parametrize("text", ["range(0, 10, 0)", "range(0, 10, -2)"])
def test_range_with_non_positive_step_is_rejected(text: str) -> None:
    assert "range() step must be positive" in str(error_of("p", text))


def test_empty_choice_is_rejected() -> None:
    assert "choice() needs at least one option" in str(error_of("opt", "choice([])"))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("choice([[1, 2]])", "choice() options must be numbers, quoted strings"),
        ("choice(['a', 'a'])", "option 'a' is listed twice"),
    ],
)
def test_bad_choice_options_are_rejected(text: str, fragment: str) -> None:
    assert fragment in str(error_of("opt", text))


@pytest.mark.parametrize(
    "text", ["randint(2, 20", "loguniform(1e-4,, 1e-2)", "[randint(2, 20), ", "uniform(0, 1))"]
)
def test_syntax_errors_say_what_was_expected(text: str) -> None:
    message = str(error_of("lr", text))
    assert message.startswith("lr: syntax error")
    assert "expected an expression like loguniform(1e-4, 1e-2)" in message


def test_list_item_errors_name_the_item() -> None:
    assert error_of("channels", ["randint(2, 20)", "randint(20, 2)"]).key == "channels[1]"
    assert error_of("channels", "[randint(2, 20), randint(20, 2)]").key == "channels[1]"


@pytest.mark.parametrize("value", ["{'a': 1}", {"a": 1}, "{1, 2}", "f(1)(2)"])
def test_mappings_sets_and_odd_calls_are_rejected(value: object) -> None:
    error_of("p", value)


def test_parameter_names_that_clash_with_flattened_names_are_rejected() -> None:
    with pytest.raises(SpaceError, match="must not contain"):
        Space.from_mapping({"channels.0": "randint(1, 2)"})


# --- Space ------------------------------------------------------------------------------------

MAPPING = {
    "lr": "loguniform(1e-4, 1e-2)",
    "batch_size": "randint(32, 256)",
    "optimizer": "choice(['adam', 'sgd'])",
    "channels": "[randint(2, 20), randint(2, 20)]",
    "dropout": "range(0.0, 0.5, 0.1)",
    "stride": "range(1, 8, 2)",
    "activation": "relu",
    "depth": 3,
}


def test_distributions_are_flattened_and_constants_left_out() -> None:
    dists = Space.from_mapping(MAPPING).distributions()
    assert dists == {
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": IntDistribution(32, 256),
        "optimizer": CategoricalDistribution(("adam", "sgd")),
        "channels.0": IntDistribution(2, 20),
        "channels.1": IntDistribution(2, 20),
        "dropout": FloatDistribution(0.0, 0.5, step=0.1),
        "stride": IntDistribution(1, 7, step=2),
    }


def test_range_top_stays_inside_high_when_off_grid() -> None:
    assert Space.from_mapping({"r": "range(0, 10, 3)"}).distributions()["r"] == IntDistribution(
        0, 9, step=3
    )


def test_space_error_from_mapping_names_the_key() -> None:
    with pytest.raises(SpaceError) as info:
        Space.from_mapping({"lr": "loguniform(1e-4, 1e-2)", "wd": "loguniform(0, 1)"})
    assert info.value.key == "wd"


def test_suggest_returns_nested_params_with_constants() -> None:
    space = Space.from_mapping(MAPPING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    params = space.suggest(trial)
    assert set(params) == set(MAPPING)
    assert params["activation"] == "relu" and params["depth"] == 3
    channels = params["channels"]
    assert isinstance(channels, list) and len(channels) == 2
    assert all(2 <= c <= 20 for c in channels)
    assert set(trial.params) == set(space.distributions())
    assert trial.params["channels.1"] == channels[1]


def test_rebuild_inverts_the_flat_optuna_params() -> None:
    space = Space.from_mapping(MAPPING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    trial = study.ask()
    params = space.suggest(trial)
    study.tell(trial, 0.0)
    assert space.rebuild(study.trials[0].params) == params


def test_rebuild_with_a_missing_parameter_names_it() -> None:
    space = Space.from_mapping({"channels": "[randint(2, 20), randint(2, 20)]"})
    with pytest.raises(SpaceError, match=r"channels\.1: missing"):
        space.rebuild({"channels.0": 3})


def test_sample_is_reproducible_and_within_bounds() -> None:
    space = Space.from_mapping(MAPPING)
    first = space.sample(5, seed=7)
    assert first == space.sample(5, seed=7)
    assert first != space.sample(5, seed=8)
    assert len(first) == 5
    for params in first:
        assert 1e-4 <= params["lr"] <= 1e-2  # type: ignore[operator]
        assert params["optimizer"] in ("adam", "sgd")
        assert params["stride"] in (1, 3, 5, 7)


def test_merged_overrides_replace_defaults_key_by_key() -> None:
    base = Space.from_mapping({"lr": "loguniform(1e-5, 1e-1)", "depth": "randint(1, 4)"})
    merged = base.merged({"lr": "loguniform(1e-4, 1e-2)", "extra": "adam"})
    assert merged.describe() == {
        "lr": "loguniform(0.0001, 0.01)",
        "depth": "randint(1, 4)",
        "extra": "'adam'",
    }
    assert base.params["lr"] == LogUniform(1e-5, 1e-1)  # the default space is untouched


def test_merged_rejects_a_bad_override_naming_its_key() -> None:
    with pytest.raises(SpaceError) as info:
        Space.from_mapping({"lr": "loguniform(1e-5, 1e-1)"}).merged({"lr": "loguniform(0, 1)"})
    assert info.value.key == "lr"


# --- quoted expressions where a constant is meant -------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "blamed", "quoted"),
    [
        ("channels", "['randint(4, 12)', 6]", "channels[0]", "'randint(4, 12)'"),
        ("channels", '[4, "randint(4, 12)"]', "channels[1]", "'randint(4, 12)'"),
        ("optimizer", "choice(['randint(1, 2)', 'adam'])", "optimizer", "'randint(1, 2)'"),
        ("lr", "'loguniform(1e-4, 1e-2)'", "lr", "'loguniform(1e-4, 1e-2)'"),
        ("channels", "['[1, 2]']", "channels[0]", "'[1, 2]'"),
        ("act", "'randit(1, 2)'", "act", "'randit(1, 2)'"),  # a typo is still an expression
    ],
)
def test_a_quoted_string_that_is_an_expression_is_refused_as_a_constant(
    key: str, value: str, blamed: str, quoted: str
) -> None:
    err = error_of(key, value)
    assert err.key == blamed
    assert err.message == (
        f"the quoted string {quoted} is a search expression, not a constant; "
        "write the expression without quotes"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("'adam'", Fixed("adam")),
        ("choice(['adam', 'sgd-momentum'])", Choice(("adam", "sgd-momentum"))),
        ("choice(['(a)', 'x[0]', 'f.g()'])", Choice(("(a)", "x[0]", "f.g()"))),
        ("['1e-4', 'relu']", ListOf((Fixed("1e-4"), Fixed("relu")))),
    ],
)
def test_quoted_words_brackets_and_numbers_stay_string_constants(
    value: str, expected: object
) -> None:
    assert parse_param("p", value) == expected


def test_items_of_a_yaml_list_are_read_as_expressions_one_by_one() -> None:
    assert parse_param("channels", ["randint(4, 12)", "6", 7]) == ListOf(
        (RandInt(4, 12), Fixed(6), Fixed(7))
    )


def test_a_call_cut_at_its_comma_by_a_yaml_tool_says_to_quote_the_whole_list() -> None:
    err = error_of("channels", ["randint(2", "20)"])
    assert err.key == "channels[0]"
    assert err.message.endswith(
        "a list such as [randint(2, 20), randint(2, 20)] was split at its commas, as YAML tools "
        'do; quote the whole list: "[randint(2, 20), randint(2, 20)]"'
    )
    # Outside a list the same typo is only a syntax error: no list was split there.
    assert "split at its commas" not in error_of("lr", "loguniform(1e-4").message


def test_missing_names_the_sampled_entries_a_partial_trial_lacks_constants_never() -> None:
    space = Space.from_mapping(
        {"lr": "loguniform(1e-4, 1e-1)", "channels": "[randint(4, 8), randint(4, 16)]", "bs": 32}
    )
    assert space.missing({}) == ["lr", "channels.0", "channels.1"]
    assert space.missing({"lr": 0.01, "channels.0": 5}) == ["channels.1"]
    assert space.missing({"lr": 0.01, "channels.0": 5, "channels.1": 9}) == []
