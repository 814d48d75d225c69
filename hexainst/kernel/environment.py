"""The environment variables the toolkit reads, each read here and nowhere else.

| variable | what it sets | read by |
|---|---|---|
| ``HEXAINST_SOURCES`` | an offline mirror of the natural sources (default: the Hub) | natural builder |
| ``HEXAINST_BASE_URL`` | the OpenAI-compatible endpoint of the synthetic builder | synthetic builder |
| ``HEXAINST_MODEL`` | the model name at that endpoint | synthetic builder |
| ``OPENAI_API_KEY`` / ``DEEPSEEK_API_KEY`` | the endpoint's key (never logged or written) | synthetic builder |
| ``HEXAINST_CACHE`` | the toolkit's cache folder (default ``~/.cache/hexainst``) | model loading |
| ``HEXAINST_LABEL_STUDIO`` | the ``label-studio`` executable (default ``.ls-venv/bin/label-studio``) | annotation |
| the one ``annotate judge --api-key-env`` names (default ``OPENAI_API_KEY``) | the judge endpoint's key | annotation judge |
| ``XDG_RUNTIME_DIR`` | where the writers' locks live (default: the temporary folder) | output locks |

Each function takes an optional mapping instead of ``os.environ`` so that tests can pass their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SOURCES = "HEXAINST_SOURCES"
BASE_URL = "HEXAINST_BASE_URL"
MODEL = "HEXAINST_MODEL"
CACHE = "HEXAINST_CACHE"
LABEL_STUDIO = "HEXAINST_LABEL_STUDIO"
API_KEYS = ("OPENAI_API_KEY", "DEEPSEEK_API_KEY")
RUNTIME = "XDG_RUNTIME_DIR"


def _get(name: str, env: Mapping[str, str] | None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    return value or None


def sources_dir(env: Mapping[str, str] | None = None) -> Path | None:
    value = _get(SOURCES, env)
    return Path(value) if value else None


def mirror(given: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The offline mirror of the natural sources: ``given`` (a setting), else ``$HEXAINST_SOURCES``, else
    ``None`` (the Hub). The one place that fallback is written; every reader of the mirror calls it."""
    return Path(given) if given is not None else sources_dir(env)


def base_url(env: Mapping[str, str] | None = None) -> str | None:
    return _get(BASE_URL, env)


def model(env: Mapping[str, str] | None = None) -> str | None:
    return _get(MODEL, env)


def api_key(env: Mapping[str, str] | None = None) -> str | None:
    """The first key set among ``OPENAI_API_KEY`` and ``DEEPSEEK_API_KEY``."""
    for name in API_KEYS:
        value = _get(name, env)
        if value:
            return value
    return None


def is_set(name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``name`` (one of the variables above, e.g. the default endpoint's key) is set."""
    return _get(name, env) is not None


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    value = _get(CACHE, env)
    return Path(value) if value else Path.home() / ".cache" / "hexainst"


def runtime_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_RUNTIME_DIR`` when it names an existing folder, else ``None``."""
    value = _get(RUNTIME, env)
    return Path(value) if value and Path(value).is_dir() else None


def label_studio_binary(env: Mapping[str, str] | None = None) -> Path | None:
    value = _get(LABEL_STUDIO, env)
    return Path(value) if value else None


def named(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A variable the user names on the command line (``annotate judge --api-key-env``); None when unset or empty."""
    return _get(name, env)


def without_api_keys(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment for a child process that needs no credentials."""
    out = dict(os.environ if env is None else env)
    for name in API_KEYS:
        out.pop(name, None)
    return out
