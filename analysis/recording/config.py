"""Every default of the recorder, in one place: ``hexainst record`` and ``baseline`` read theirs from here.

:class:`RecordingConfig` checks its values when built, so a bad number stops the command before the
model loads, with one line naming the option. Light: importing it loads neither torch nor numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from hexainst.kernel.errors import UserError

#: Model weight dtypes (counts are always integers, whatever the dtype).
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
#: How an instruction becomes model input (see :class:`~hexainst.analysis.recording.recorder.InputPolicy`).
INPUT_MODES: tuple[str, ...] = ("raw", "chat")
#: Where padding goes in a batch.
PADDING_SIDES: tuple[str, ...] = ("right", "left")
#: Instructions per store shard file.
DEFAULT_ROWS_PER_SHARD = 64


class RecordingConfigError(UserError, ValueError):
    """A recording parameter is out of range (the message names the option)."""


@dataclass(frozen=True)
class RecordingConfig:
    """How a recording runs. The batching fields are written into the store header."""

    #: Instructions per forward pass.
    batch_size: int = 8
    dtype: str = "float32"
    device: str = "cpu"
    #: "auto" spreads a large model over all devices (then ``device`` is ignored).
    device_map: str | None = None
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    padding_side: str = "right"
    with_sums: bool = False
    #: Convert a GGUF model once to a cached safetensors folder (else dequantise on every load).
    convert_gguf: bool = True

    def __post_init__(self) -> None:
        for name, option in (("batch_size", "--batch-size"), ("rows_per_shard", "--rows-per-shard")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RecordingConfigError(f"{option} must be an integer >= 1, got {value!r}")
        if self.dtype not in DTYPES:
            raise RecordingConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.padding_side not in PADDING_SIDES:
            raise RecordingConfigError(
                f"--padding-side must be one of {', '.join(PADDING_SIDES)}, got {self.padding_side!r}")
        if not isinstance(self.device, str) or not self.device.strip():
            raise RecordingConfigError(f"--device must name a torch device such as cpu or cuda, got {self.device!r}")
