"""Fixtures for the recording tests: a real word-level tokenizer and made-up rows."""

from __future__ import annotations

import pytest

from analysis.recording.testing import make_rows, make_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def rows():
    return make_rows(20)
