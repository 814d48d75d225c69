"""Every setting of the annotation stage, declared once: ``hexainst annotate`` builds its options here.

:class:`AnnotationConfig` holds the round's settings, with :class:`Candidates`, where its candidates come from.

Each field's default, range and help is its :func:`~hexainst.kernel.settings.setting`; the config
checks its values when built (a :class:`~hexainst.kernel.settings.SettingError` naming the setting;
the command line names its flag).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hexainst.kernel.settings import check_ranges, setting

#: Who made an annotator's verdicts.
ANNOTATOR_KINDS: tuple[str, ...] = ("person", "model")


@dataclass(frozen=True)
class Candidates:
    """Where a round's candidates come from, any mix: a release folder (its rows, then its reserve), candidate
    pool folders, JSONL files of record-schema rows (``up`` and ``sync`` build their options here)."""

    release: Path | None = setting(None, "a release folder: its rows and its reserve", metavar="DIR")
    pools: tuple[Path, ...] = setting((), "candidate pool folders (<category>.<source>.jsonl for all 12 cells)",
                                      metavar="DIR")
    rows: tuple[Path, ...] = setting((), "JSONL files of record-schema rows", metavar="FILE")

    @property
    def given(self) -> bool:
        return self.release is not None or bool(self.pools) or bool(self.rows)


@dataclass(frozen=True)
class AnnotationConfig:
    """The settings of a validation round in Label Studio (each ``annotate`` step reads the ones it needs).

    ``host``, ``start_timeout_s``, ``migrate_timeout_s`` and ``export_timeout_s`` are the servers'
    own limits, not options of the command line. ``candidates`` are what ``up`` and ``sync`` send;
    ``out``, ``save_exports`` and ``previous`` are the files of :func:`~hexainst.annotation.round.export`.
    """

    data_dir: Path = setting(Path("work/label-studio"), "the round's folder: its state, one Label Studio data dir "
                                                        "per annotator")
    #: The address every server listens on (loopback only by default).
    host: str = "127.0.0.1"
    port: int | None = setting(None, "port of the first instance; the others take the next ones (default: free "
                                     "ports)", low=1, high=65535)
    detach: bool = setting(False, "leave the servers running; stop them with 'annotate stop'")
    juniors: int = setting(2, "junior annotators of a new round (as in the paper)", low=1)
    batch_size: int = setting(100, "tasks per import request (each request is committed whole or not at all)",
                              low=1)
    sample: int | None = setting(None, "a round of N candidates, spread evenly over the cells (category x origin), "
                                       "picked by the seed (default: every candidate)", low=1, metavar="N")
    sample_per_cell: int | None = setting(None, "N candidates of every cell (all of a smaller cell), picked by "
                                                "the seed", low=1, metavar="N")
    seed: int = setting(0, "seed of the sample")
    annotator_kind: str = setting("person", "who made the verdicts", choices=ANNOTATOR_KINDS)
    workers: int = setting(4, "annotation requests in flight at once", low=1, high=32)
    judge_workers: int = setting(4, "requests in flight at once", low=1, high=64)
    api_key_env: str = setting("OPENAI_API_KEY", "environment variable holding the API key (unset: no key)",
                               metavar="VAR")
    attempts: int = setting(3, "answers asked per task before it is left unannotated", low=1, high=10)
    max_tokens: int = setting(1024, "answer length limit", low=16)
    limit: int | None = setting(None, "judge at most N tasks (in id order)", low=1, metavar="N")
    timeout: float = setting(300.0, "seconds per request", low=0, low_open=True)
    progress: bool = setting(True, "show progress bars (the database's creation, imports, the judge)")
    #: The candidates :func:`~hexainst.annotation.round.up` and :func:`~hexainst.annotation.round.sync` send.
    candidates: Candidates = field(default_factory=Candidates)
    out: Path | None = setting(None, "where to write validation.json", metavar="FILE")
    save_exports: Path | None = setting(None, "also keep each annotator's raw Label Studio export there (audit trail)",
                                        metavar="DIR")
    previous: Path | None = setting(None, "the validation file of the earlier rounds: FILE's rounds are kept and this "
                                          "round is numbered after them (an id decided in both refuses); without it "
                                          "the file holds round 1", metavar="FILE")
    #: How long one server may take to answer after it starts.
    start_timeout_s: float = 300.0
    #: How long creating the template database may take (once per round).
    migrate_timeout_s: float = 900.0
    #: How long one project export may take on the server.
    export_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        check_ranges(self)
        for name in ("data_dir", "out", "save_exports", "previous"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))


DEFAULTS = AnnotationConfig()
