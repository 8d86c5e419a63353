"""Config files and dotted overrides."""

import pytest
from hypothesis import given, strategies as st

from sciml.config import apply_overrides, deep_merge, load_config, parse_value
from sciml.errors import SciMLError


def test_toml_and_json_configs(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[model]\nname = "fno"\nwidth = 16\n[train]\nlr = 1e-3\n')
    json_file = tmp_path / "c.json"
    json_file.write_text('{"model": {"name": "fno", "width": 16}, "train": {"lr": 0.001}}')
    assert load_config(toml) == load_config(json_file)


def test_bad_config_files(tmp_path):
    with pytest.raises(SciMLError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\nname=")
    with pytest.raises(SciMLError, match="cannot parse"):
        load_config(broken)
    other = tmp_path / "c.ini"
    other.write_text("x")
    with pytest.raises(SciMLError, match="use .toml"):
        load_config(other)


def test_overrides_nest_and_parse():
    config = apply_overrides({"model": {"width": 8}}, ["model.width=32", "model.n_modes=[8, 8]", "pde.coefficient=lognormal"])
    assert config == {"model": {"width": 32, "n_modes": [8, 8]}, "pde": {"coefficient": "lognormal"}}
    with pytest.raises(SciMLError, match="section.key=value"):
        apply_overrides({}, ["width32"])


@given(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans()))
def test_parse_value_round_trips_scalars(value):
    text = str(value).lower() if isinstance(value, bool) else repr(value)
    assert parse_value(text) == value


def test_deep_merge_keeps_unrelated_keys():
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
