"""Every ``Examples`` section in the package's docstrings runs and prints what it says (one test per module)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import transferlab

# walk_packages: sub-packages (transferlab.widgets) and their modules too
MODULES = sorted(m.name for m in pkgutil.walk_packages(transferlab.__path__, "transferlab."))


def test_every_module_is_listed():
    assert {"transferlab.selection", "transferlab.freeze", "transferlab.train", "transferlab.widgets",
            "transferlab.widgets.device_panel", "transferlab.widgets._hardware"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples in {name} failed (see above)"
