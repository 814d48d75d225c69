"""The on-disk activation store: per-instruction integer counts of positive FFN activations.

A store is a folder::

    header.json             what was recorded and how (model, tokenizer, input policy, batching, ids, layout)
    shards/00000.npz        rows [0, rows_per_shard) ; shards/00001.npz the next range; ...
    shards/00000.npz.sha256 the shard's SHA-256, in ``sha256sum`` format (``sha256sum -c`` checks it),
                            after a ``#`` line binding the shard to its store (see below)
    .hexainst-output.json   marks the folder as an activation store (hexainst.kernel.outputs)

``header.json`` is written first and never changes; a shard is written to a temporary file and
renamed, then its checksum file is written, so a shard counts as done only when both are there
and agree. A killed run resumes after the last complete shard (:class:`StoreWriter` records the
ranges not on disk, and those whose checksum fails, again). A store is complete when every shard
is there and matches its checksum; :meth:`ActivationStore.open` refuses anything else, naming the
shard. (Format 1 stores, written before the checksums, are read without them, and not resumed.)

A store knows what made it (format 3): the header's ``model`` block holds ``weights_sha256``, a
fingerprint of the weights as loaded (every tensor of the state dict, by name, dtype and shape),
besides the Hub revision; each instruction holds ``text_sha256``, the SHA-256 of the text that was
fed. Each shard's checksum file starts with ``# hexainst-binding <sha256>``, a hash of the weights,
tokenizer, input policy, recording settings, layout and the shard's rows (ids and text hashes): a
shard copied in from another store fails its check, and a resume with other weights or edited
texts is refused. Format 2 stores (without these fields) are read, and said to be unchecked.

Columns (neurons) are ordered layer-major, then expert (routed 0..E-1, then the shared
expert), then neuron index. ``header["layout"]["blocks"]`` lists the column blocks as
``[layer, expert, width]`` in that order (expert ``-1`` for a dense MLP, ``n_experts`` for the
shared expert).

Shard arrays (``R`` rows of the shard, ``C`` columns, ``L`` layers, ``E`` experts):

- ``n_tokens``: int32 ``[R]``, T per instruction (real tokens of the model input);
- dense models: ``counts`` uint16 ``[R, C]``;
- MoE models: ``counts_data`` uint16, ``counts_indices`` int32, ``counts_indptr`` int64 (CSR);
- MoE models: ``routing`` int32 ``[R, L, E]``, token-level top-k selection counts;
- optional ``sums`` float32 ``[R, C]`` (dense) or ``sums_data``/``sums_indices``/``sums_indptr``
  (MoE, CSR), the per-neuron sum of activations over counted tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from hexainst import __version__
from hexainst.analysis.recording.config import DEFAULT_ROWS_PER_SHARD
from hexainst.kernel import atomic
from hexainst.kernel.digests import file_sha256
from hexainst.kernel.disk_space import full_disk_is_one_line
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import check_schema, read_json
from hexainst.kernel.output_lock import writer_lock
from hexainst.kernel.outputs import MARKER, OutputError, claim_output_dir, read_marker, write_marker

FORMAT = "hexainst-activations"
#: 2: shard checksums (``shards/NNNNN.npz.sha256``) and the ``recording`` block (batching, attention).
#: 3: the weights fingerprint, a text hash per row, and each shard's checksum bound to them.
FORMAT_VERSION = 3
#: Versions that can still be read (not resumed).
READABLE_VERSIONS = (1, 2, 3)
#: The first line of a format-3 shard checksum file, before the hash of what the shard was recorded from.
BINDING_PREFIX = "# hexainst-binding "
HEADER_FILE = "header.json"
SHARD_DIR = "shards"
#: The marker kind (hexainst.kernel.outputs) of a store folder.
OUTPUT_KIND = "activation store"
#: T must stay below this so that a count fits uint16.
MAX_TOKENS = 65_536

#: Header keys that must match for a writer to resume an existing store.
_IDENTITY_KEYS = (
    "format", "format_version", "model", "tokenizer", "input_policy", "recording", "instructions", "layout",
)

#: What every header holds (checked on open, so a damaged header is one line naming the field).
_HEADER_SCHEMA = {
    "type": "object",
    "required": ["format", "format_version", "model", "tokenizer", "input_policy", "instructions", "layout"],
    "properties": {
        "model": {"type": "object"},
        "tokenizer": {"type": "object"},
        "input_policy": {"type": "object"},
        "recording": {"type": "object"},
        "instructions": {
            "type": "array", "minItems": 1,
            "items": {"type": "object", "required": ["id", "category"],
                      "properties": {"id": {"type": "string"}, "category": {"type": "string"},
                                     "text_sha256": {"type": ["string", "null"]}}},
        },
        "layout": {
            "type": "object",
            "required": ["blocks", "n_cols", "n_layers", "n_experts", "top_k", "is_moe", "rows_per_shard"],
            "properties": {
                "blocks": {"type": "array", "minItems": 1,
                           "items": {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "integer"}}},
                "n_cols": {"type": "integer", "minimum": 1},
                "n_layers": {"type": "integer", "minimum": 1},
                "n_experts": {"type": "integer", "minimum": 0},
                "top_k": {"type": "integer", "minimum": 0},
                "is_moe": {"type": "boolean"},
                "rows_per_shard": {"type": "integer", "minimum": 1},
                "with_sums": {"type": "boolean"},
            },
        },
    },
}


class StoreError(UserError):
    """A store folder is missing, incomplete, malformed, or does not match a resumed run."""


def _toolkit_version() -> str:
    return __version__


def _atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it to ``path``."""
    atomic.write_with(path, write, fsync=True)


def _only_store_entries(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but what a store writer leaves (a killed run before its header)."""
    return all(p.name in (SHARD_DIR, MARKER) or p.name.startswith(f".{HEADER_FILE}.") for p in folder.iterdir())


def _identity(header: Mapping[str, Any], key: str) -> Any:
    """The part of ``header[key]`` that must match to resume: a tokenizer is its content (sha256, class),
    wherever it was loaded from; a model with a weights fingerprint is its weights and settings, however
    its folder is spelled or wherever it lies; every other key whole."""
    value = header.get(key)
    if key == "tokenizer" and isinstance(value, dict):
        return {k: value.get(k) for k in ("sha256", "class")}
    if key == "model" and isinstance(value, dict) and value.get("weights_sha256"):
        return {k: v for k, v in value.items() if k != "name_or_path"}
    return value


#: What a category name may be: a plain name (it becomes a label in figures, tables and report.md).
CATEGORY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}")


def check_category(value: Any, where: str) -> None:
    """Raise :class:`StoreError` (one line naming ``where``) unless ``value`` is a plain category name."""
    if not isinstance(value, str) or not CATEGORY_PATTERN.fullmatch(value):
        hint = ("; rows of hexainst.load() hold ClassLabel numbers: record the release itself, or write each "
                "row's name, ds.features['category'].int2str(n)") if isinstance(value, int) else ""
        raise StoreError(f"{where} has category {json.dumps(value)}; a category must be a name of letters, digits, "
                         f"spaces and _ . + - (at most 64 characters), such as code or generalqa{hint}")


def text_sha256(text: str) -> str:
    """The SHA-256 of an instruction's text (UTF-8), as a store's header keeps it per row."""
    return hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()


def shard_binding(header: Mapping[str, Any], start: int, stop: int) -> str | None:
    """What a shard of rows ``start..stop-1`` was recorded from, as one hash (None before format 3)."""
    if int(header.get("format_version", 0)) < 3:
        return None
    layout = {k: v for k, v in (header.get("layout") or {}).items() if k != "rows_per_shard"}
    payload = {
        "model": _identity(header, "model"), "tokenizer": _identity(header, "tokenizer"),
        "input_policy": header.get("input_policy"), "recording": header.get("recording"), "layout": layout,
        "rows": [[row.get("id"), row.get("text_sha256")] for row in header["instructions"][start:stop]],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=_json_default).encode("utf-8")).hexdigest()


def unchecked_reason(header: Mapping[str, Any]) -> str | None:
    """Why a store cannot be checked against the weights and texts it was made from (None when it can)."""
    version = int(header.get("format_version", 0))
    if version < 3:
        return (f"format {version}, written before stores recorded their weights and texts: which model and which "
                "texts made it cannot be checked")
    lacking = [what for what, missing in (
        ("weights", not (header.get("model") or {}).get("weights_sha256")),
        ("texts", any(not row.get("text_sha256") for row in header.get("instructions", [])))) if missing]
    if lacking:
        return f"its header does not record the {' or the '.join(lacking)} it was made from: they cannot be checked"
    return None


def _resume_refusal(path: Path, key: str, old: Any, new: Any) -> StoreError:
    return StoreError(f"{path} already holds a store recorded with a different {key!r}{_difference(old, new)}; "
                      "use another output folder or pass overwrite")


def check_resumable_recording(path: str | os.PathLike[str], asked: Mapping[str, Any]) -> None:
    """Before a model loads: the store already in ``path`` (if any) would be resumed, and it was recorded with
    other ``recording`` settings among ``asked`` (e.g. batch_size, padding_side): refused now, in the words the
    writer would use once the model had loaded."""
    if not (Path(path) / HEADER_FILE).is_file():
        return
    recorded = read_header(path).get("recording")
    if not isinstance(recorded, dict):
        return
    differ = [k for k in asked if k in recorded and recorded[k] != asked[k]]
    if differ:
        raise _resume_refusal(Path(path), "recording", {k: recorded[k] for k in differ}, {k: asked[k] for k in differ})


def _difference(old: Any, new: Any) -> str:
    """`` (field: old -> new, ...)`` for two header values that differ, when short enough to say."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        text = ", ".join(f"{k}: {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}" for k in keys)
    elif isinstance(old, list) and isinstance(new, list):
        text = f"{len(old)} -> {len(new)} entries" if len(old) != len(new) else ""
    else:
        text = f"{json.dumps(old)} -> {json.dumps(new)}"
    return f" ({text})" if text and len(text) <= 200 else ""


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {value!r}")


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n"
    _atomic_write_bytes(path, lambda h: h.write(text.encode("utf-8")))


def make_layout(
    blocks: Sequence[Sequence[int]],
    *,
    n_layers: int,
    n_experts: int = 0,
    top_k: int = 0,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    with_sums: bool = False,
) -> dict[str, Any]:
    """The ``layout`` part of a header, checked.

    ``blocks``: ``(layer, expert, width)`` in column order: layer-major, then expert (``-1``
    dense; ``0..n_experts-1`` routed; ``n_experts`` shared), each block ``width`` neurons.
    """
    clean = [[int(layer), int(expert), int(width)] for layer, expert, width in blocks]
    if not clean:
        raise StoreError("layout has no neuron blocks")
    if n_layers <= 0:
        raise StoreError(f"n_layers must be positive, got {n_layers}")
    is_moe = n_experts > 0
    if is_moe and top_k <= 0:
        raise StoreError("an MoE layout needs top_k > 0")
    keys = [(layer, expert if expert >= 0 else -1) for layer, expert, _ in clean]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise StoreError("layout blocks must be unique and ordered layer-major, then expert")
    for layer, expert, width in clean:
        if not 0 <= layer < n_layers:
            raise StoreError(f"block layer {layer} outside 0..{n_layers - 1}")
        if width <= 0:
            raise StoreError(f"block ({layer}, {expert}) has width {width}")
        if is_moe and not -1 <= expert <= n_experts:
            raise StoreError(f"block expert {expert} outside -1..{n_experts} (MoE; -1 = a dense layer)")
        if not is_moe and expert != -1:
            raise StoreError(f"dense layout block with expert {expert} (must be -1)")
    if rows_per_shard <= 0:
        raise StoreError(f"rows_per_shard must be positive, got {rows_per_shard}")
    return {
        "blocks": clean,
        "n_cols": int(sum(width for _, _, width in clean)),
        "n_layers": int(n_layers),
        "n_experts": int(n_experts),
        "top_k": int(top_k),
        "is_moe": bool(is_moe),
        "counts_dtype": "uint16",
        "counts_format": "csr" if is_moe else "dense",
        "rows_per_shard": int(rows_per_shard),
        "with_sums": bool(with_sums),
        "column_order": "layer, expert (routed 0..E-1, then shared = E; -1 dense), neuron",
    }


def _column_arrays(blocks: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(neuron_layer int16, neuron_expert int16, neuron_index int32), each [n_cols]."""
    layers, experts, index = [], [], []
    for layer, expert, width in blocks:
        layers.append(np.full(width, layer, dtype=np.int16))
        experts.append(np.full(width, expert, dtype=np.int16))
        index.append(np.arange(width, dtype=np.int32))
    return np.concatenate(layers), np.concatenate(experts), np.concatenate(index)


def _shard_ranges(n_rows: int, rows_per_shard: int) -> list[tuple[int, int]]:
    return [(start, min(start + rows_per_shard, n_rows)) for start in range(0, n_rows, rows_per_shard)]


def _shard_path(root: Path, shard: int) -> Path:
    return root / SHARD_DIR / f"{shard:05d}.npz"


def _checksum_path(shard_path: Path) -> Path:
    return shard_path.with_name(shard_path.name + ".sha256")


def _write_checksum(shard_path: Path, binding: str | None = None) -> None:
    """``sha256sum`` format (``sha256sum -c`` skips the ``#`` line), after the shard's binding if any."""
    line = (f"{BINDING_PREFIX}{binding}\n" if binding else "") + f"{file_sha256(shard_path)}  {shard_path.name}\n"
    _atomic_write_bytes(_checksum_path(shard_path), lambda h: h.write(line.encode("ascii")))


def shard_state(shard_path: Path, binding: str | None = None) -> str:
    """``"ok"``, ``"missing"`` (no shard or no checksum file: not finished), ``"corrupt"`` (they disagree)
    or, given the ``binding`` the store expects, ``"foreign"`` (a shard recorded from other weights,
    texts or settings, e.g. copied in from another store)."""
    check = _checksum_path(shard_path)
    if not shard_path.is_file() or not check.is_file():
        return "missing"
    try:
        lines = check.read_text("ascii").splitlines()
        bound = [ln[len(BINDING_PREFIX):].strip() for ln in lines if ln.startswith(BINDING_PREFIX)]
        want = [ln for ln in lines if ln.strip() and not ln.startswith("#")][0].split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return "corrupt"
    if want != file_sha256(shard_path):
        return "corrupt"
    if binding is not None and bound != [binding]:
        return "foreign"
    return "ok"


def _write_npz(handle: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` with fixed zip timestamps (same arrays, same bytes)."""
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with archive.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)


def _to_csr(matrix: Any, dtype: np.dtype) -> sp.csr_matrix:
    csr = sp.csr_matrix(matrix)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    return sp.csr_matrix((csr.data.astype(dtype), csr.indices.astype(np.int32), csr.indptr.astype(np.int64)), shape=csr.shape)


class ActivationStore:
    """Read access to a complete store. Open with :meth:`open`."""

    def __init__(self, path: Path, header: dict[str, Any]):
        self.path = Path(path)
        self.header = header
        layout = header["layout"]
        self._layout = layout
        self.ids: list[str] = [row["id"] for row in header["instructions"]]
        self.categories: list[str] = [row["category"] for row in header["instructions"]]
        self.sources: list[str | None] = [row.get("source") for row in header["instructions"]]
        self.n_layers: int = int(layout["n_layers"])
        self.n_experts: int = int(layout["n_experts"])
        self.top_k: int = int(layout["top_k"])
        self.is_moe: bool = bool(layout["is_moe"])
        self.n_cols: int = int(layout["n_cols"])
        self.neuron_layer, self.neuron_expert, self.neuron_index = _column_arrays(layout["blocks"])
        if self.neuron_layer.size != self.n_cols:
            raise StoreError(f"{self.path / HEADER_FILE}: layout blocks hold {self.neuron_layer.size} neurons, "
                             f"n_cols says {self.n_cols}")
        self._ranges = _shard_ranges(len(self.ids), int(layout["rows_per_shard"]))
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._n_tokens: np.ndarray | None = None
        self._routing: np.ndarray | None = None
        #: Instructions the call that returned this store recorded (None when it was only opened).
        self.recorded_now: int | None = None

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, *, verify: bool = True) -> ActivationStore:
        """Open the store folder at ``path``.

        Raises :class:`StoreError` naming the shard if the store is incomplete, or (with ``verify``,
        the default) if a shard does not match its checksum.
        """
        root = Path(path)
        header = read_header(root)
        store = cls(root, header)
        store.check(verify=verify)
        return store

    @property
    def has_checksums(self) -> bool:
        """Whether the store's shards carry checksums (format 2 and later)."""
        return int(self.header["format_version"]) >= 2

    @property
    def unchecked(self) -> str | None:
        """Why this store cannot be checked against the weights and texts it was made from (None: it can)."""
        return unchecked_reason(self.header)

    def shard_states(self, *, verify: bool = True) -> list[str]:
        """Per shard: ``"ok"``, ``"missing"``, ``"corrupt"`` or ``"foreign"`` (see :func:`shard_state`)."""
        out = []
        for i, (start, stop) in enumerate(self._ranges):
            path = _shard_path(self.path, i)
            if not self.has_checksums or not verify:
                done = path.is_file() and (not self.has_checksums or _checksum_path(path).is_file())
                out.append("ok" if done else "missing")
            else:
                out.append(shard_state(path, shard_binding(self.header, start, stop)))
        return out

    def _where(self, shard: int) -> str:
        start, stop = self._ranges[shard]
        return f"shard {SHARD_DIR}/{_shard_path(self.path, shard).name} (rows {start}..{stop - 1})"

    def check(self, *, verify: bool = True) -> None:
        """Raise :class:`StoreError` unless every shard is there (and, with ``verify``, matches its checksum)."""
        states = self.shard_states(verify=verify)
        foreign = [i for i, st in enumerate(states) if st == "foreign"]
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise StoreError(
                f"activation store {self.path}: {self._where(foreign[0])}{more} was recorded from other weights, "
                "texts or settings than this store's header (copied in from another store?); rerun 'hexainst "
                "record' with the same arguments to record it again"
            )
        corrupt = [i for i, st in enumerate(states) if st == "corrupt"]
        if corrupt:
            more = f" and {len(corrupt) - 1} more" if len(corrupt) > 1 else ""
            raise StoreError(
                f"activation store {self.path}: {self._where(corrupt[0])}{more} does not match its checksum "
                "(changed or truncated after it was written); rerun 'hexainst record' with the same arguments "
                "to record it again"
            )
        missing = [i for i, st in enumerate(states) if st == "missing"]
        if missing:
            raise StoreError(
                f"activation store {self.path} is incomplete: {len(missing)} of {len(states)} shards missing "
                f"(first: {self._where(missing[0])}); rerun the recording with the same arguments to resume"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        kind = f"MoE E={self.n_experts} k={self.top_k}" if self.is_moe else "dense"
        return f"ActivationStore({str(self.path)!r}, {len(self)} instructions, {self.n_cols} neurons, {kind})"

    # -- shards --------------------------------------------------------------------------
    def _shard(self, index: int) -> dict[str, np.ndarray]:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        path = _shard_path(self.path, index)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise StoreError(f"activation store {self.path}: cannot read {self._where(index)} "
                             f"({type(exc).__name__}: {exc}); rerun 'hexainst record' with the same arguments "
                             "to record it again") from exc
        start, stop = self._ranges[index]
        need = ["n_tokens"] + (["counts_data", "counts_indices", "counts_indptr", "routing"] if self.is_moe
                               else ["counts"])
        lacking = [k for k in need if k not in arrays]
        if lacking:
            raise StoreError(f"activation store {self.path}: {self._where(index)} lacks {', '.join(lacking)}")
        if arrays["n_tokens"].shape != (stop - start,):
            raise StoreError(f"activation store {self.path}: {self._where(index)} holds "
                             f"{arrays['n_tokens'].shape[0]} rows, expected {stop - start}")
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[index] = arrays
        return arrays

    def _rows(self, rows: Iterable[int] | None) -> np.ndarray:
        if rows is None:
            return np.arange(len(self), dtype=np.int64)
        idx = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for a store of {len(self)} instructions")
        return np.where(idx < 0, idx + len(self), idx)

    def _gather(self, rows: np.ndarray, key: str, csr: bool, dtype: np.dtype) -> Any:
        rps = int(self._layout["rows_per_shard"])
        parts: list[Any] = []
        # Consecutive rows of one shard are read together.
        i = 0
        while i < len(rows):
            shard = int(rows[i] // rps)
            j = i
            while j < len(rows) and rows[j] // rps == shard:
                j += 1
            local = rows[i:j] - shard * rps
            arrays = self._shard(shard)
            if csr:
                start, stop = self._ranges[shard]
                matrix = sp.csr_matrix(
                    (arrays[f"{key}_data"], arrays[f"{key}_indices"], arrays[f"{key}_indptr"]),
                    shape=(stop - start, self.n_cols),
                )
                parts.append(matrix[local])
            else:
                parts.append(arrays[key][local])
            i = j
        if csr:
            if not parts:
                return sp.csr_matrix((0, self.n_cols), dtype=dtype)
            out = sp.vstack(parts, format="csr")
            return sp.csr_matrix((out.data.astype(dtype, copy=False), out.indices, out.indptr), shape=out.shape)
        if not parts:
            return np.zeros((0, self.n_cols), dtype=dtype)
        return np.concatenate(parts, axis=0).astype(dtype, copy=False)

    # -- data ----------------------------------------------------------------------------
    @property
    def n_tokens(self) -> np.ndarray:
        """int32 ``[n_instr]``: T per instruction."""
        if self._n_tokens is None:
            self._n_tokens = np.concatenate(
                [self._shard(i)["n_tokens"] for i in range(len(self._ranges))]
            ).astype(np.int32)
        return self._n_tokens

    def counts(self, rows: Iterable[int] | None = None) -> np.ndarray | sp.csr_matrix:
        """Counts of tokens with activation > 0, ``[n_rows, n_cols]``.

        Dense models: ``np.ndarray`` uint16. MoE models: ``scipy.sparse.csr_matrix`` uint16
        (a routed expert's neuron only counts tokens routed to that expert).
        ``rows``: instruction indices in store order (default: all).
        """
        idx = self._rows(rows)
        return self._gather(idx, "counts", csr=self.is_moe, dtype=np.dtype(np.uint16))

    def frequencies(self, rows: Iterable[int] | None = None) -> np.ndarray | sp.csr_matrix:
        """``p = counts / T`` as float64 ``[n_rows, n_cols]`` (CSR for MoE)."""
        idx = self._rows(rows)
        counts = self.counts(idx)
        inv_t = 1.0 / self.n_tokens[idx].astype(np.float64)
        if sp.issparse(counts):
            return sp.csr_matrix(sp.diags(inv_t) @ counts.astype(np.float64))
        return counts.astype(np.float64) * inv_t[:, None]

    @property
    def routing(self) -> np.ndarray | None:
        """int32 ``[n_instr, n_layers, n_experts]``: how many tokens picked each expert; None if dense."""
        if not self.is_moe:
            return None
        if self._routing is None:
            self._routing = np.concatenate(
                [self._shard(i)["routing"] for i in range(len(self._ranges))]
            ).astype(np.int32)
        return self._routing

    def sums(self, rows: Iterable[int] | None = None) -> np.ndarray | None:
        """float32 ``[n_rows, n_cols]``: per-neuron sum of activations over counted tokens; None if not recorded."""
        if not self._layout.get("with_sums"):
            return None
        idx = self._rows(rows)
        out = self._gather(idx, "sums", csr=self.is_moe, dtype=np.dtype(np.float32))
        return out.toarray() if sp.issparse(out) else out


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of the store at ``path``, checked for format, version and the fields every header has."""
    root = Path(path)
    header_path = root / HEADER_FILE
    if not root.exists():
        raise StoreError(f"activation store {root} not found")
    if not header_path.is_file():
        raise StoreError(f"{root} is not an activation store (no {HEADER_FILE})")
    header = read_json(header_path, what="store header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise StoreError(f"{header_path}: format is {got!r}, expected {FORMAT!r}")
    if header.get("format_version") not in READABLE_VERSIONS:
        raise StoreError(
            f"{header_path}: format_version {header.get('format_version')!r} is not supported "
            f"(this hexainst reads {', '.join(map(str, READABLE_VERSIONS))})"
        )
    check_schema(header, _HEADER_SCHEMA, str(header_path))
    ids = [row["id"] for row in header["instructions"]]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise StoreError(f"{header_path}: instruction id {dup!r} is listed twice")
    return header


def _check_same_texts(path: Path, old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> None:
    """Refuse to resume a store whose rows (same ids) now have other texts than those it was recorded from."""
    before = {row["id"]: row.get("text_sha256") for row in old}
    changed = [row["id"] for row in new if row["id"] in before and before[row["id"]] != row.get("text_sha256")]
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise StoreError(f"{path}: the text of instruction {changed[0]!r}{more} is not the text this store was "
                         "recorded from (edited since?); record into another folder, or pass --overwrite")


class StoreWriter:
    """Writes a store shard by shard; resumes an existing one with the same identity.

    >>> w = StoreWriter(path, instructions=[{"id": "a", "category": "code", "source": "natural"}],
    ...                 layout=make_layout([(0, -1, 4)], n_layers=1))
    >>> w.write_shard(0, n_tokens=np.array([3]), counts=np.array([[0, 1, 3, 2]]))
    >>> store = w.finish()
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        instructions: Sequence[Mapping[str, Any]],
        layout: Mapping[str, Any],
        model: Mapping[str, Any] | None = None,
        tokenizer: Mapping[str, Any] | None = None,
        input_policy: Mapping[str, Any] | None = None,
        recording: Mapping[str, Any] | None = None,
        created_by: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ):
        self.path = Path(path)
        for row in instructions:
            check_category(row.get("category"), f"instruction {row.get('id')!r}")
        instr = [
            {"id": str(row["id"]), "category": str(row["category"]), "source": row.get("source"),
             "text_sha256": text_sha256(row["instruction"]) if row.get("instruction") is not None
             else row.get("text_sha256")}
            for row in instructions
        ]
        ids = [row["id"] for row in instr]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise StoreError(f"duplicate instruction id {dup!r} in the rows to record")
        if not instr:
            raise StoreError("no instructions to record")
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "toolkit_version": _toolkit_version(),
            "model": dict(model or {}),
            "tokenizer": dict(tokenizer or {}),
            "input_policy": dict(input_policy or {}),
            "recording": dict(recording or {}),
            "instructions": instr,
            "layout": dict(layout),
            "created_by": dict(created_by or {}),
        }
        # Round-trip through JSON so the comparison with an existing header is like for like.
        header = json.loads(json.dumps(header, sort_keys=True, default=_json_default))
        header_path = self.path / HEADER_FILE
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path} is a file, not a store folder")
        if not header_path.is_file() and self.path.is_dir() and any(self.path.iterdir()) and \
                not _only_store_entries(self.path) and (read_marker(self.path) or {}).get("kind") != OUTPUT_KIND:
            raise StoreError(f"{self.path} holds files and is not an activation store; record into a new or "
                             "empty folder")
        #: Shards whose file did not match its checksum when the writer opened the store (recorded again).
        self.corrupt: list[int] = []
        #: Shards recorded from other weights, texts or settings (copied in; recorded again).
        self.foreign: list[int] = []
        if header_path.is_file() and not overwrite:
            existing = read_header(self.path)
            if existing["format_version"] != FORMAT_VERSION:
                why = "shard checksums" if existing["format_version"] < 2 else "stores recorded their weights and texts"
                raise StoreError(
                    f"{self.path} holds a store of format {existing['format_version']} (written before {why}); "
                    "it can be read but not resumed: record into a new folder")
            _check_same_texts(self.path, existing["instructions"], header["instructions"])
            old_w, new_w = existing["model"].get("weights_sha256"), header["model"].get("weights_sha256")
            if old_w != new_w:
                raise StoreError(
                    f"{self.path} was recorded from other weights (weights_sha256 {str(old_w)[:12]} -> "
                    f"{str(new_w)[:12]}; the model's files changed since, or this is another model): record into "
                    "another folder, or pass --overwrite")
            for key in _IDENTITY_KEYS:
                old, new = _identity(existing, key), _identity(header, key)
                if old != new:
                    raise _resume_refusal(self.path, key, old, new)
            header = existing
        else:
            if overwrite and (self.path / SHARD_DIR).is_dir():
                for old in (self.path / SHARD_DIR).iterdir():
                    if old.name.endswith((".npz", ".npz.sha256")):
                        old.unlink()
            self.path.mkdir(parents=True, exist_ok=True)
            write_marker(self.path, OUTPUT_KIND, complete=False)
            _write_json(header_path, header)
        self.header = header
        self.layout = header["layout"]
        self.n_cols = int(self.layout["n_cols"])
        self.ranges = _shard_ranges(len(instr), int(self.layout["rows_per_shard"]))

    @property
    def rows_per_shard(self) -> int:
        return int(self.layout["rows_per_shard"])

    def shard_done(self, shard: int) -> bool:
        """Whether the shard and its checksum file are on disk and agree."""
        return shard_state(_shard_path(self.path, shard)) == "ok"

    def pending_shards(self) -> list[int]:
        """Shards to (re)record, in order: not on disk, unfinished, or not matching their checksum
        (those are listed in :attr:`corrupt` too)."""
        pending = []
        self.corrupt, self.foreign = [], []
        for i, (start, stop) in enumerate(self.ranges):
            state = shard_state(_shard_path(self.path, i), shard_binding(self.header, start, stop))
            if state != "ok":
                pending.append(i)
                if state == "corrupt":
                    self.corrupt.append(i)
                elif state == "foreign":
                    self.foreign.append(i)
        return pending

    def shard_name(self, shard: int) -> str:
        """``shards/NNNNN.npz (rows a..b)`` for messages."""
        start, stop = self.ranges[shard]
        return f"{SHARD_DIR}/{_shard_path(self.path, shard).name} (rows {start}..{stop - 1})"

    def write_shard(
        self,
        shard: int,
        *,
        n_tokens: np.ndarray,
        counts: np.ndarray | sp.spmatrix,
        routing: np.ndarray | None = None,
        sums: np.ndarray | sp.spmatrix | None = None,
    ) -> Path:
        """Write shard ``shard`` (rows ``self.ranges[shard]``) atomically; arrays as in the module doc."""
        start, stop = self.ranges[shard]
        n = stop - start
        n_tokens = np.asarray(n_tokens)
        if n_tokens.shape != (n,):
            raise StoreError(f"shard {shard}: n_tokens has shape {n_tokens.shape}, expected ({n},)")
        if (n_tokens <= 0).any():
            empty = self.header["instructions"][start + int(np.argmin(n_tokens))]["id"]
            raise StoreError(f"shard {shard}: instruction {empty} has no tokens")
        if (n_tokens >= MAX_TOKENS).any():
            bad = start + int(np.argmax(n_tokens))
            raise StoreError(
                f"instruction {self.header['instructions'][bad]['id']} has {int(n_tokens.max())} tokens; "
                f"counts are uint16, so T must be < {MAX_TOKENS}"
            )
        if counts.shape != (n, self.n_cols):
            raise StoreError(f"shard {shard}: counts has shape {counts.shape}, expected ({n}, {self.n_cols})")
        arrays: dict[str, np.ndarray] = {"n_tokens": n_tokens.astype(np.int32)}
        if sp.issparse(counts):
            coo = sp.coo_matrix(counts)
            values = coo.data.astype(np.int64)
            over = values > n_tokens.astype(np.int64)[coo.row]
            bad_row = int(coo.row[np.argmax(over)]) if over.any() else -1
        else:
            values = np.asarray(counts).astype(np.int64)
            over_rows = (values > n_tokens.astype(np.int64)[:, None]).any(axis=1)
            bad_row = int(np.argmax(over_rows)) if over_rows.any() else -1
        if values.size and values.min() < 0:
            raise StoreError(f"shard {shard}: negative counts")
        if bad_row >= 0:
            raise StoreError(
                f"shard {shard}: instruction {self.header['instructions'][start + bad_row]['id']} has a count above its T"
            )
        if self.layout["is_moe"]:
            csr = _to_csr(counts, np.dtype(np.uint16))
            arrays.update(counts_data=csr.data, counts_indices=csr.indices, counts_indptr=csr.indptr)
            e, n_layers = int(self.layout["n_experts"]), int(self.layout["n_layers"])
            if routing is None or np.asarray(routing).shape != (n, n_layers, e):
                got = None if routing is None else np.asarray(routing).shape
                raise StoreError(f"shard {shard}: MoE store needs routing of shape ({n}, {n_layers}, {e}), got {got}")
            arrays["routing"] = np.asarray(routing).astype(np.int32)
        else:
            arrays["counts"] = np.asarray(counts.toarray() if sp.issparse(counts) else counts).astype(np.uint16)
        if self.layout["with_sums"]:
            if sums is None or sums.shape != (n, self.n_cols):
                raise StoreError(f"shard {shard}: store records sums; expected shape ({n}, {self.n_cols})")
            if self.layout["is_moe"]:
                csr = _to_csr(sums, np.dtype(np.float32))
                arrays.update(sums_data=csr.data, sums_indices=csr.indices, sums_indptr=csr.indptr)
            else:
                arrays["sums"] = np.asarray(sums, dtype=np.float32)
        path = _shard_path(self.path, shard)
        _checksum_path(path).unlink(missing_ok=True)  # the shard counts as done once its checksum is written
        _atomic_write_bytes(path, lambda h: _write_npz(h, arrays))
        _write_checksum(path, shard_binding(self.header, start, stop))
        return path

    def finish(self) -> ActivationStore:
        """Open the written store (raises :class:`StoreError` if shards are missing)."""
        return ActivationStore.open(self.path)


def write_store(
    path: str | os.PathLike,
    *,
    instructions: Sequence[Mapping[str, Any]],
    n_tokens: np.ndarray,
    counts: np.ndarray | sp.spmatrix,
    blocks: Sequence[Sequence[int]],
    n_layers: int,
    n_experts: int = 0,
    top_k: int = 0,
    routing: np.ndarray | None = None,
    sums: np.ndarray | None = None,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    model: Mapping[str, Any] | None = None,
    tokenizer: Mapping[str, Any] | None = None,
    input_policy: Mapping[str, Any] | None = None,
    created_by: Mapping[str, Any] | None = None,
) -> ActivationStore:
    """Write a whole store from in-memory arrays (for tests and merges) and open it.

    ``counts`` ``[n_instr, n_cols]`` (dense or sparse); ``routing`` ``[n_instr, L, E]`` for MoE;
    ``sums`` ``[n_instr, n_cols]`` or None. ``blocks`` as in :func:`make_layout`.
    """
    layout = make_layout(
        blocks, n_layers=n_layers, n_experts=n_experts, top_k=top_k,
        rows_per_shard=rows_per_shard, with_sums=sums is not None,
    )
    writer = StoreWriter(
        path, instructions=instructions, layout=layout, model=model, tokenizer=tokenizer,
        input_policy=input_policy or {"mode": "raw", "add_special_tokens": True, "bos_in_T": True},
        created_by=created_by or {"by": "write_store"}, overwrite=True,
    )
    counts_csr = sp.csr_matrix(counts) if sp.issparse(counts) else None
    sums_csr = sp.csr_matrix(sums) if sums is not None and sp.issparse(sums) else None
    for shard, (start, stop) in enumerate(writer.ranges):
        writer.write_shard(
            shard,
            n_tokens=np.asarray(n_tokens)[start:stop],
            counts=counts_csr[start:stop] if counts_csr is not None else np.asarray(counts)[start:stop],
            routing=None if routing is None else np.asarray(routing)[start:stop],
            sums=None if sums is None else (sums_csr[start:stop] if sums_csr is not None else np.asarray(sums)[start:stop]),
        )
    return writer.finish()


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def claim_store_dir(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                    option: str = "--out") -> Path:
    """Check, before any work, that a recording may write the store folder ``path``; return it resolved.

    A new or empty folder, or an activation store (resumed, or replaced with ``overwrite``), may be
    used; never a file, a folder that is, holds or lies inside an input, or anyone else's folder.
    """
    out = Path(path).expanduser().resolve()
    if (out / HEADER_FILE).is_file() and read_marker(out) is None:
        header = read_header(out)
        raise OutputError(
            f"{option} {out}: holds an activation store of format {header['format_version']} (written before "
            "shard checksums); it can be analysed but not resumed or replaced: record into a new folder")
    return claim_output_dir(out, OUTPUT_KIND, inputs=inputs, option=option)


def claim_merge_dir(parts: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                    option: str = "--out") -> tuple[Path, bool]:
    """Check, before any work, where a merge may write; return (out resolved, whether the parts live inside it).

    Parts inside ``out_dir`` are the data-parallel layout (``OUT/parts/rank-*``): the merged store is
    then written into ``out_dir`` beside them. Otherwise ``out_dir`` may be new, empty, or an earlier
    merge's output (replaced when the new one is complete); never a part, a folder inside a part, an
    activation store recorded by ``hexainst record``, or anyone else's folder.
    """
    out = Path(out_dir).expanduser().resolve()
    paths = [Path(p).expanduser().resolve() for p in parts]
    if paths and all(p.parent == out / "parts" for p in paths):  # the data-parallel layout, OUT/parts/rank-*
        if (read_marker(out) or {}).get("kind") != OUTPUT_KIND:  # not a folder record --data-parallel made
            own = [p.name for p in sorted(out.iterdir()) if p.name != "parts" and not p.name.startswith(".")]
            if own:
                raise OutputError(f"{option} {out}: holds {own[0]} and was not written by hexainst; merge into "
                                  "another folder (the parts can stay where they are)")
        return out, True
    for part in paths:
        if _inside(out, part):
            raise OutputError(f"{option} {out}: it is or lies inside the part {part}; merge into another folder")
        if _inside(part, out):
            raise OutputError(f"{option} {out}: it holds the part {part}; merge into another folder")
    if (out / HEADER_FILE).is_file() and read_marker(out) is not None:
        header = read_header(out)
        if (header.get("created_by") or {}).get("by") != "merge_stores":
            raise OutputError(f"{option} {out}: holds an activation store recorded by 'hexainst record', not an "
                              "earlier merge; merge into another folder")
    return claim_output_dir(out, OUTPUT_KIND, inputs=paths, option=option), False


def merge_stores(parts: Sequence[str | os.PathLike | ActivationStore], out_dir: str | os.PathLike,
                 *, rows_per_shard: int | None = None) -> ActivationStore:
    """Concatenate complete stores (e.g. one per data-parallel process) into ``out_dir``.

    The parts must share model, tokenizer, input policy, recording settings and layout (shard size
    aside); instructions follow the order of ``parts``; ids must be unique across parts. ``out_dir``
    is checked first (:func:`claim_merge_dir`); the merged store is built beside it and swapped in
    when complete, unless the parts live inside ``out_dir`` (the data-parallel layout).
    """
    part_paths = [p.path if isinstance(p, ActivationStore) else Path(p) for p in parts]
    if not part_paths:
        raise StoreError("merge_stores needs at least one store")
    out, in_place = claim_merge_dir(part_paths, out_dir)
    with writer_lock(out, what="activation store"), full_disk_is_one_line(
            out, "merged store", "what was there before is as it was: free space, then rerun"):
        return _merge_checked(parts, out, in_place, rows_per_shard)


def _merge_checked(parts: Sequence[str | os.PathLike | ActivationStore], out: Path, in_place: bool,
                   rows_per_shard: int | None) -> ActivationStore:
    stores = [p if isinstance(p, ActivationStore) else ActivationStore.open(p) for p in parts]
    first = stores[0]

    def identity(store: ActivationStore) -> dict[str, Any]:
        layout = {k: v for k, v in store.header["layout"].items() if k != "rows_per_shard"}
        return {"model": _identity(store.header, "model"), "tokenizer": _identity(store.header, "tokenizer"),
                "input_policy": store.header["input_policy"], "recording": store.header.get("recording"),
                "layout": layout}

    for store in stores[1:]:
        a, b = identity(first), identity(store)
        for key in a:
            if a[key] != b[key]:
                raise StoreError(f"cannot merge {store.path} into {first.path}: different {key!r}"
                                 f"{_difference(a[key], b[key])}")
    seen: dict[str, Path] = {}
    for store in stores:
        for row in store.header["instructions"]:
            if row["id"] in seen:
                where = "twice" if seen[row["id"]] == store.path else f"and in {seen[row['id']]}"
                raise StoreError(f"cannot merge: instruction id {row['id']!r} is in {store.path} {where} "
                                 "(each instruction must be in one part; the same store given twice?)")
            seen[row["id"]] = store.path
    if in_place:
        return _merge_into(stores, out, rows_per_shard)
    with atomic.staged_dir(out) as tmp:
        _merge_into(stores, tmp, rows_per_shard)
    return ActivationStore.open(out)


def _merge_into(stores: list[ActivationStore], out_dir: Path, rows_per_shard: int | None) -> ActivationStore:
    first = stores[0]
    instructions = [row for store in stores for row in store.header["instructions"]]
    layout = dict(first.header["layout"])
    if rows_per_shard is not None:
        layout["rows_per_shard"] = int(rows_per_shard)
    created_by = {"by": "merge_stores", "parts": [str(s.path) for s in stores],
                  "part_created_by": [s.header.get("created_by") for s in stores]}
    writer = StoreWriter(out_dir, instructions=instructions, layout=layout, model=first.header["model"],
                         tokenizer=first.header["tokenizer"], input_policy=first.header["input_policy"],
                         recording=first.header.get("recording"), created_by=created_by, overwrite=True)
    # Global row -> (store, local row) without loading everything at once.
    offsets = np.cumsum([0] + [len(s) for s in stores])

    def take(start: int, stop: int, getter) -> list[Any]:
        out = []
        for k, store in enumerate(stores):
            lo, hi = max(start, offsets[k]), min(stop, offsets[k + 1])
            if lo < hi:
                out.append(getter(store, np.arange(lo - offsets[k], hi - offsets[k])))
        return out

    for shard, (start, stop) in enumerate(writer.ranges):
        n_tok = np.concatenate(take(start, stop, lambda s, r: s.n_tokens[r]))
        counts_parts = take(start, stop, lambda s, r: s.counts(r))
        counts = sp.vstack(counts_parts, format="csr") if first.is_moe else np.concatenate(counts_parts)
        routing = np.concatenate(take(start, stop, lambda s, r: s.routing[r])) if first.is_moe else None
        sums = np.concatenate(take(start, stop, lambda s, r: s.sums(r))) if layout.get("with_sums") else None
        writer.write_shard(shard, n_tokens=n_tok, counts=counts, routing=routing, sums=sums)
    return writer.finish()
