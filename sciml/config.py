"""Configuration: a file (TOML, YAML or JSON) plus dotted overrides from the command line.

Examples
--------
>>> from sciml.config import apply_overrides
>>> apply_overrides({"model": {"width": 16}}, ["model.width=32", "train.lr=1e-3"])
{'model': {'width': 32}, 'train': {'lr': 0.001}}
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Iterable

from sciml.errors import SciMLError


def load_config(path: str | os.PathLike) -> dict:
    """Read a config file; the format follows the suffix (.toml, .yaml/.yml, .json)."""
    path = Path(path)
    if not path.is_file():
        raise SciMLError(f"config file {path} does not exist; check the path given to --config")
    suffix = path.suffix.lower()
    text = path.read_text()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python < 3.11
                import tomli as tomllib
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ModuleNotFoundError:
                raise SciMLError(
                    f"reading {path} needs PyYAML: pip install 'sciml[yaml]', or write the config as TOML"
                ) from None
            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise SciMLError(f"config file {path} has suffix {suffix!r}; use .toml, .yaml or .json")
    except (ValueError, TypeError) as exc:  # tomllib, json and yaml parse errors derive from ValueError
        first = str(exc).splitlines()[0]
        raise SciMLError(f"cannot parse config file {path}: {first}") from None
    if not isinstance(data, dict):
        raise SciMLError(f"config file {path} must hold a table of sections, not {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """A command-line value as JSON where it parses (numbers, booleans, lists), else a string.

    >>> parse_value("32"), parse_value("1e-3"), parse_value("true"), parse_value("[8, 8]"), parse_value("amg")
    (32, 0.001, True, [8, 8], 'amg')
    """
    lowered = text.strip()
    if lowered in ("True", "False"):
        return lowered == "True"
    if lowered in ("none", "None", "null"):
        return None
    try:
        return json.loads(lowered)
    except json.JSONDecodeError:
        return text


def is_override(arg: str) -> bool:
    """Whether a command-line word looks like ``section.key=value``."""
    key, sep, _ = arg.partition("=")
    return bool(sep) and "." in key and not key.startswith("-")


def apply_overrides(config: dict, overrides: Iterable[str]) -> dict:
    """A copy of ``config`` with each ``a.b.c=value`` applied."""
    out = copy.deepcopy(config)
    for item in overrides:
        if not is_override(item):
            raise SciMLError(f"cannot read override {item!r}; write it as section.key=value, e.g. model.width=32")
        key, _, value = item.partition("=")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SciMLError(f"override {item!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = parse_value(value)
    return out


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` updated recursively with ``override``."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_keys(section: dict, allowed: Iterable[str], where: str) -> None:
    """Reject keys a section does not know, naming the valid ones."""
    allowed = sorted(allowed)
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise SciMLError(f"unknown {where} setting(s) {unknown}; valid: {', '.join(allowed)}")


def write_config(config: dict, path: str | os.PathLike) -> str:
    """Write the resolved config as JSON (readable back with ``--config``), atomically."""
    from sciml.atomic import atomic_write_json

    atomic_write_json(path, config)
    return os.fspath(path)
