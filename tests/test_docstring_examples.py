"""Every Examples section in the package runs and prints what it says, so docs cannot rot."""

import doctest
import importlib
import os
import pkgutil

import pytest


PACKAGES = ("sciml", "sciml.solvers", "sciml.datasets", "sciml.models")
NOT_MODULES = {"sciml.__main__", "sciml.solvers", "sciml.datasets", "sciml.models"}


def module_names() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        path = importlib.import_module(package).__path__
        names += [f"{package}.{info.name}" for info in pkgutil.iter_modules(path)
                  if f"{package}.{info.name}" not in NOT_MODULES]
    return sorted(set(names))


@pytest.mark.parametrize("name", module_names())
def test_examples_run(name, tmp_path, one_torch_thread):
    module = importlib.import_module(name)
    here = os.getcwd()
    os.chdir(tmp_path)  # examples that write files write them here
    try:
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
                                 report=False)
    finally:
        os.chdir(here)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run doctest -v)"
