"""The on-disk activation store: per-instruction integer counts of positive FFN activations.

A store is a folder::

    header.json          what was recorded and how (model, tokenizer, input policy, ids, layout)
    shards/00000.npz     rows [0, rows_per_shard) ; shards/00001.npz the next range; ...

``header.json`` is written first and never changes; a shard is written to a temporary file
and renamed, so a shard file on disk is always complete. A killed run resumes after the last
complete shard (:class:`StoreWriter` skips the ranges already on disk). A store is complete
when every shard exists; :meth:`ActivationStore.open` refuses an incomplete one.

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

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from hexainst.analysis.recording.config import DEFAULT_ROWS_PER_SHARD
from hexainst.kernel import atomic
from hexainst.kernel.errors import UserError

FORMAT = "hexainst-activations"
FORMAT_VERSION = 1
HEADER_FILE = "header.json"
SHARD_DIR = "shards"
#: T must stay below this so that a count fits uint16.
MAX_TOKENS = 65_536

#: Header keys that must match for a writer to resume an existing store.
_IDENTITY_KEYS = ("format", "format_version", "model", "tokenizer", "input_policy", "instructions", "layout")


class StoreError(UserError):
    """A store folder is missing, incomplete, malformed, or does not match a resumed run."""


def _toolkit_version() -> str:
    from hexainst import __version__

    return __version__


def _atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it to ``path``."""
    atomic.write_with(path, write, fsync=True)


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


def _write_npz(handle: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` with fixed zip timestamps (same arrays, same bytes)."""
    import zipfile

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
        self._ranges = _shard_ranges(len(self.ids), int(layout["rows_per_shard"]))
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._n_tokens: np.ndarray | None = None
        self._routing: np.ndarray | None = None

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> "ActivationStore":
        """Open the store folder at ``path``; raises :class:`StoreError` if it is incomplete."""
        root = Path(path)
        header = read_header(root)
        store = cls(root, header)
        missing = [i for i in range(len(store._ranges)) if not _shard_path(root, i).is_file()]
        if missing:
            first = store._ranges[missing[0]]
            raise StoreError(
                f"activation store {root} is incomplete: {len(missing)} of {len(store._ranges)} shards missing "
                f"(first: {_shard_path(root, missing[0]).name}, rows {first[0]}..{first[1] - 1}); "
                "rerun the recording with the same arguments to resume"
            )
        return store

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
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read shard {path}: {exc}") from exc
        start, stop = self._ranges[index]
        if arrays["n_tokens"].shape != (stop - start,):
            raise StoreError(f"shard {path} holds {arrays['n_tokens'].shape[0]} rows, expected {stop - start}")
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
    """The header of the store at ``path``, checked for format and version."""
    root = Path(path)
    header_path = root / HEADER_FILE
    if not header_path.is_file():
        raise StoreError(f"{root} is not an activation store (no {HEADER_FILE})")
    try:
        header = json.loads(header_path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise StoreError(f"{header_path}: invalid JSON ({exc})") from exc
    if header.get("format") != FORMAT:
        raise StoreError(f"{header_path}: format is {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{header_path}: format_version {header.get('format_version')!r} is not supported (expected {FORMAT_VERSION})"
        )
    return header


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
        created_by: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ):
        self.path = Path(path)
        instr = [
            {"id": str(row["id"]), "category": str(row["category"]), "source": row.get("source")}
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
            "instructions": instr,
            "layout": dict(layout),
            "created_by": dict(created_by or {}),
        }
        # Round-trip through JSON so the comparison with an existing header is like for like.
        header = json.loads(json.dumps(header, sort_keys=True, default=_json_default))
        header_path = self.path / HEADER_FILE
        if header_path.is_file() and not overwrite:
            existing = read_header(self.path)
            for key in _IDENTITY_KEYS:
                if existing.get(key) != header.get(key):
                    raise StoreError(
                        f"{self.path} already holds a store recorded with a different {key!r}; "
                        "use another output folder or pass overwrite"
                    )
            header = existing
        else:
            if overwrite and (self.path / SHARD_DIR).is_dir():
                for old in (self.path / SHARD_DIR).glob("*.npz"):
                    old.unlink()
            _write_json(header_path, header)
        self.header = header
        self.layout = header["layout"]
        self.n_cols = int(self.layout["n_cols"])
        self.ranges = _shard_ranges(len(instr), int(self.layout["rows_per_shard"]))

    @property
    def rows_per_shard(self) -> int:
        return int(self.layout["rows_per_shard"])

    def shard_done(self, shard: int) -> bool:
        return _shard_path(self.path, shard).is_file()

    def pending_shards(self) -> list[int]:
        """Shard numbers not yet on disk, in order."""
        return [i for i in range(len(self.ranges)) if not self.shard_done(i)]

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
            raise StoreError(f"shard {shard}: instruction {self.header['instructions'][start + int(np.argmin(n_tokens))]['id']} has no tokens")
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
            e, l = int(self.layout["n_experts"]), int(self.layout["n_layers"])
            if routing is None or np.asarray(routing).shape != (n, l, e):
                got = None if routing is None else np.asarray(routing).shape
                raise StoreError(f"shard {shard}: MoE store needs routing of shape ({n}, {l}, {e}), got {got}")
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
        _atomic_write_bytes(path, lambda h: _write_npz(h, arrays))
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


def merge_stores(parts: Sequence[str | os.PathLike | ActivationStore], out_dir: str | os.PathLike,
                 *, rows_per_shard: int | None = None) -> ActivationStore:
    """Concatenate complete stores (e.g. one per data-parallel process) into ``out_dir``.

    The parts must share model, tokenizer, input policy and layout (shard size aside);
    instructions follow the order of ``parts``; ids must be unique across parts.
    """
    stores = [p if isinstance(p, ActivationStore) else ActivationStore.open(p) for p in parts]
    if not stores:
        raise StoreError("merge_stores needs at least one store")
    first = stores[0]
    def identity(store: ActivationStore) -> dict[str, Any]:
        layout = {k: v for k, v in store.header["layout"].items() if k != "rows_per_shard"}
        return {"model": store.header["model"], "tokenizer": store.header["tokenizer"],
                "input_policy": store.header["input_policy"], "layout": layout}
    for store in stores[1:]:
        a, b = identity(first), identity(store)
        for key in a:
            if a[key] != b[key]:
                raise StoreError(f"cannot merge {store.path} into {first.path}: different {key!r}")
    instructions = [row for store in stores for row in store.header["instructions"]]
    layout = dict(first.header["layout"])
    if rows_per_shard is not None:
        layout["rows_per_shard"] = int(rows_per_shard)
    created_by = {"by": "merge_stores", "parts": [str(s.path) for s in stores],
                  "part_created_by": [s.header.get("created_by") for s in stores]}
    writer = StoreWriter(out_dir, instructions=instructions, layout=layout, model=first.header["model"],
                         tokenizer=first.header["tokenizer"], input_policy=first.header["input_policy"],
                         created_by=created_by, overwrite=True)
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
