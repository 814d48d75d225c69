"""Fixtures for the synthetic builder tests: a real stub server over HTTP, and a build helper."""

from __future__ import annotations

import pytest

from hexainst.builders.synthetic.stub_server import StubServer


@pytest.fixture
def stub():
    with StubServer(latency=0.0) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_endpoint_env(monkeypatch):
    for k in ("HEXAINST_BASE_URL", "HEXAINST_MODEL", "OPENAI_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.delenv(k, raising=False)

