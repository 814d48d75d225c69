"""The annotation stage's defaults, in one place: ``hexainst annotate`` reads them for its options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AnnotationConfig:
    """Defaults of a validation round in Label Studio.

    Attributes:
        data_dir: the round's folder: its state file, one Label Studio data dir per person, the template.
        host: the address every server listens on (loopback only by default).
        port: the first instance's port; the others take the next ones. ``None``: free ports.
        juniors: how many junior annotators (each gets an instance of their own); the paper has two.
        batch_size: tasks per import request (each request is committed whole or not at all).
        start_timeout_s: how long one server may take to answer after it starts.
        migrate_timeout_s: how long creating the template database may take (once per round).
        export_timeout_s: how long one project export may take on the server.
    """

    data_dir: Path = Path("work/label-studio")
    host: str = "127.0.0.1"
    port: int | None = None
    juniors: int = 2
    batch_size: int = 100
    start_timeout_s: float = 300.0
    migrate_timeout_s: float = 900.0
    export_timeout_s: float = 300.0


DEFAULTS = AnnotationConfig()
