"""nbval set-up for the solution notebooks.

While a solution notebook's kernel starts, ``SEARCHLIGHT_STRICT=1`` (a failed exercise check raises, so a
broken solution fails the run) and, unless already set, ``SEARCHLIGHT_PROGRESS=off`` (nothing is written to
the user's home). The variables are restored afterwards, so unit tests in the same session are unaffected.
"""

from __future__ import annotations

import os

import pytest

_ENV = {"SEARCHLIGHT_STRICT": "1"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    saved = {k: os.environ.get(k) for k in (*_ENV, "SEARCHLIGHT_PROGRESS")}
    os.environ.update(_ENV)
    os.environ.setdefault("SEARCHLIGHT_PROGRESS", "off")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
