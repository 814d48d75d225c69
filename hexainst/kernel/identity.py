"""Who made a verdict: a person or a model, and how (``$defs/identity`` of the record schema, version 2).

Every verdict of a validation file and of a release row carries one. Verdicts of version-1 files,
which did not say, are upgraded to kind ``unrecorded`` (never guessed to be a person's).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError
from hexainst.kernel.settings import SettingError
from hexainst.kernel.vocab import ANNOTATOR_KINDS

KEYS: tuple[str, ...] = ("kind", "model", "prompt", "how")


def person(how: str | None = None) -> dict[str, Any]:
    """A person's identity; ``how`` optionally says how they worked (what they saw, their training)."""
    return {"kind": "person", "model": None, "prompt": None, "how": how or None}


def model(name: str, prompt: str, how: str | None = None) -> dict[str, Any]:
    """A model's identity: its name, what prompt it was given (``prompt_ref``), how it was run."""
    if not name or not name.strip():
        raise SettingError("model", "is needed for a model annotator: the model's name")
    if not prompt or not prompt.strip():
        raise SettingError("prompt", "is needed for a model annotator: the prompt it was given")
    return {"kind": "model", "model": name.strip(), "prompt": prompt.strip(), "how": how or None}


def unrecorded() -> dict[str, Any]:
    """The identity of a verdict read from a version-1 file (which did not record who made it)."""
    return {"kind": "unrecorded", "model": None, "prompt": None, "how": None}


def prompt_ref(path: str | Path) -> str:
    """``<file name> sha256:<hex>`` of a prompt file: what a model verdict records as its prompt."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingError("prompt", f"{path}: cannot read the prompt file: {exc.strerror or exc}") from None
    return f"{path.name} sha256:{hashlib.sha256(data).hexdigest()}"


def text_ref(name: str, text: str) -> str:
    """``<name> sha256:<hex>`` of a prompt given as text (e.g. the guidelines plus the judge's template)."""
    return f"{name} sha256:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def check(identity: Any, where: str) -> dict[str, Any]:
    """The identity as a complete dict, or a :class:`UserError` naming ``where``."""
    if not isinstance(identity, Mapping) or identity.get("kind") not in ANNOTATOR_KINDS:
        raise UserError(f"{where}: identity must be an object with kind one of {', '.join(ANNOTATOR_KINDS)}; got {identity!r}")
    out = {k: identity.get(k) for k in KEYS}
    if out["kind"] == "model" and not (out["model"] and out["prompt"]):
        raise UserError(f"{where}: a model's identity needs its model name and prompt")
    return out


def same_annotator(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two identities name the same annotator (kind, model and prompt; ``how`` is free text)."""
    return all(a.get(k) == b.get(k) for k in ("kind", "model", "prompt"))


def describe(identity: Mapping[str, Any]) -> str:
    """One line: ``person`` or ``model NAME (prompt REF)``, with ``how`` when given."""
    if identity.get("kind") == "model":
        text = f"model {identity['model']} (prompt {identity['prompt']})"
    else:
        text = str(identity.get("kind"))
    return f"{text}; {identity['how']}" if identity.get("how") else text
