"""Reading user tables: column mapping, derived columns, and one clear line for every bad input."""

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.observations import SCHEMA, empty_observations, read_table, select_fit_data
from scalinglab.testing import example_observations


def table(**overrides):
    base = {
        "Model Size": [1e6, 2e6, 4e6, 8e6, 1e6, 2e6],
        "Tokens": [1e8, 1e8, 2e8, 2e8, 4e8, 4e8],
        "loss": [3.0, 2.9, 2.7, 2.6, 2.8, 2.7],
    }
    base.update(overrides)
    return pd.DataFrame(base)


COLS = {"n": "Model Size", "d": "Tokens", "y": "loss"}


def select(frame, **kw):
    return select_fit_data(frame, ("n", "d"), COLS, source="runs.csv", n_params=5, **kw)


def test_mapping_selects_columns_in_order():
    data = select(table())
    np.testing.assert_array_equal(data.inputs[0], [1e6, 2e6, 4e6, 8e6, 1e6, 2e6])
    np.testing.assert_array_equal(data.y, [3.0, 2.9, 2.7, 2.6, 2.8, 2.7])


def test_d_from_flops():
    frame = table(C=[6e14, 1.2e15, 4.8e15, 9.6e15, 2.4e15, 4.8e15])
    data = select_fit_data(frame, ("n", "d"), {"n": "Model Size", "c": "C", "y": "loss"}, d_from_flops=True, n_params=5)
    np.testing.assert_allclose(data.inputs[1], [1e8, 1e8, 2e8, 2e8, 4e8, 4e8])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (table().drop(columns="Tokens"), "runs.csv: no column 'Tokens'"),
        (table(loss=[3.0, 2.9, "abc", 2.6, 2.8, 2.7]), "row 3 (line 4), column 'loss': 'abc' is not a finite number"),
        (table(loss=[3.0, 2.9, np.nan, 2.6, 2.8, 2.7]), "row 3 (line 4), column 'loss': is empty"),
        (table(loss=[3.0, 2.9, np.inf, 2.6, 2.8, 2.7]), "row 3 (line 4), column 'loss'"),
        (table(Tokens=[1e8, 0, 2e8, 2e8, 4e8, 4e8]), "row 2 (line 3), column 'Tokens': 0 must be > 0"),
        (table(loss=[3.0, 2.9, -1.0, 2.6, 2.8, 2.7]), "column 'loss': -1 must be > 0"),
        (table(Tokens=[1e8] * 6), "column 'Tokens' has one distinct value"),
        (table().iloc[:4], "4 points, fewer than the form's 5 parameters"),
    ],
)
def test_bad_input_names_file_row_and_column(frame, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select(frame)


def test_higher_is_better_fits_the_error_and_checks_the_ceiling():
    data = select(table(loss=[0.3, 0.4, 0.5, 0.6, 0.45, 0.55]), higher_is_better=True, ceiling=1.0)
    np.testing.assert_allclose(data.y, [0.7, 0.6, 0.5, 0.4, 0.55, 0.45])
    with pytest.raises(UserError, match="row 2 .* must be below the ceiling 1"):
        select(table(loss=[0.3, 1.2, 0.5, 0.6, 0.45, 0.55]), higher_is_better=True)


def test_duplicates_are_counted_and_treated_as_asked():
    frame = pd.concat([table(), table().iloc[[1, 2]]], ignore_index=True)
    data = select(frame)
    assert data.n_points == 6
    assert any("dropped 2 duplicate row(s)" in w for w in data.warnings)
    assert select(frame, on_duplicate="keep").n_points == 8
    with pytest.raises(UserError, match="2 duplicate row"):
        select(frame, on_duplicate="error")


def test_observations_table_last_point_per_run_and_metric_choice():
    obs = example_observations()
    early = obs.assign(steps=obs["steps"] / 2, value=obs["value"] * 1.5)
    both = pd.concat([early, obs, obs.assign(metric="minADE")], ignore_index=True)
    with pytest.raises(UserError, match="choose one with --metric"):
        select_fit_data(both, ("n", "d"), n_params=5)
    data = select_fit_data(both, ("n", "d"), metric="loss", n_params=5)
    assert data.n_points == len(obs)
    np.testing.assert_allclose(np.sort(data.y), np.sort(obs["value"]))
    assert data.groups is not None and len(set(data.groups)) == len(obs)


def test_read_table_csv_and_parquet_round_trip(tmp_path):
    obs = example_observations()
    obs.to_parquet(tmp_path / "obs.parquet")
    obs.to_csv(tmp_path / "obs.csv", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "obs.parquet"), obs)
    np.testing.assert_allclose(read_table(tmp_path / "obs.csv")["value"], obs["value"])
    with pytest.raises(UserError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UserError, match="unknown file type"):
        read_table(tmp_path / "x.json")


def test_empty_observations_has_the_schema():
    assert list(empty_observations().columns) == list(SCHEMA)
