"""Which checkpoint a fine-tune resumes from: the latest one the Trainer finished writing."""

from __future__ import annotations

from pathlib import Path

from hexainst.analysis.finetune.train import _last_checkpoint


def _checkpoint(work: Path, step: int, *, weights: bool = True, state: str | None = '{"global_step": 1}') -> Path:
    folder = work / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if weights:
        (folder / "model.safetensors").write_bytes(b"weights")
    if state is not None:
        (folder / "trainer_state.json").write_text(state)
    return folder


def test_a_checkpoint_cut_off_while_saving_is_skipped(tmp_path: Path) -> None:
    work = tmp_path / ".work-tuned"
    assert _last_checkpoint(work) is None  # no work folder yet
    good = _checkpoint(work, 5)
    _checkpoint(work, 10, weights=False, state=None)  # killed before its weights were written
    _checkpoint(work, 15, state='{"global_st')  # killed while writing its trainer state (written last)
    (work / "checkpoint-20").write_text("not a folder")
    assert _last_checkpoint(work) == str(good)
    # numeric order, not text order: 40 is later than 5
    later = _checkpoint(work, 40)
    assert _last_checkpoint(work) == str(later)


def test_no_complete_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    work = tmp_path / ".work-control"
    _checkpoint(work, 5, weights=False)
    assert _last_checkpoint(work) is None
