"""Forward hooks that count positive FFN activations per instruction, in int32 on each layer's device.

One :class:`CountingHooks` object is attached to a model for a whole recording. Before each
batch, :meth:`CountingHooks.start_batch` gives it the mask of real tokens ``valid`` (B, S);
the hooks then add, per instruction ``b``:

- dense gated MLP layer ``j`` (hook on ``act_fn``, output ``A`` of shape (B, S, I) or (B*S, I)):
  ``counts[b, i] += #{t : valid[b, t] and A[b, t, i] > 0}``, computed as one int8 matrix
  product of a block-diagonal token mask with the sign bits (exact int32 accumulation);
- MoE router (forward hook, output ``(logits, scores, top_k_index)``, index (B*S, k)):
  ``routing[b, e] += #{t : valid[b, t] and e in top_k_index[t]}``;
- MoE fused experts (forward pre-hook, inputs ``(hidden (B*S, H), top_k_index, top_k_weights)``):
  the (token, expert) pairs are sorted by expert, ``A_e = act_fn(hidden[tokens] @
  gate_up_proj[e, :I].T)`` is recomputed for the tokens routed to each expert (one grouped
  matmul over all experts where ``torch.nn.functional.grouped_mm`` runs, else one matmul per
  expert), then ``counts_e[b, i] += #{t routed to e : valid[b, t] and A_e[t, i] > 0}``;
- the shared expert's ``act_fn`` counts like a dense layer (every token is routed to it).

Nothing but these (B, width) integer accumulators (and optional float32 sums) outlives a
hook call: full activation tensors are never kept. On a GPU no hook waits for the device:
padding tokens are not filtered out (that needs their number on the host) but sent to a discard
row. The counts of a batch reach the host once, as 16-bit values (through page-locked memory on
a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hexainst.analysis.recording.adapters import Adapter, MoeLayer


@dataclass
class _Block:
    """Accumulators of one column block family on one device."""

    layer: int
    kind: str  # "dense" | "experts" | "shared"
    width: int  # neurons per expert (experts) or per block
    n_experts: int = 0
    counts: torch.Tensor | None = None  # int32 (B, width) or, for experts, (B*E + 1, width)
    sums: torch.Tensor | None = None  # float32, same shape as counts
    check: torch.Tensor | None = None  # experts: the act_fn path's counts while it is being verified


@dataclass
class _OnDevice:
    """The batch's token bookkeeping on one device."""

    valid: torch.Tensor  # bool (B, S)
    valid_flat: torch.Tensor  # bool (B*S,)
    owner: torch.Tensor  # int64 (B*S,): the instruction each flattened token belongs to
    selector: torch.Tensor | None = None  # int8 (max(B, 32), B*S) block-diagonal valid mask, built on first use

    def block_selector(self) -> torch.Tensor:
        """``selector[b, b*S + t] = valid[b, t]``: ``selector @ positive.reshape(B*S, I)`` counts per instruction."""
        if self.selector is None:
            batch, seq = self.valid.shape
            rows = max(batch, _INT_MM_MIN_ROWS)
            selector = torch.zeros((rows, batch, seq), dtype=torch.int8, device=self.valid.device)
            index = torch.arange(batch, device=self.valid.device)
            selector[index, index] = self.valid.to(torch.int8)
            self.selector = selector.reshape(rows, batch * seq)
        return self.selector


@dataclass
class _BatchState:
    valid: torch.Tensor  # bool (B, S), on the input device
    per_device: dict[torch.device, _OnDevice] = field(default_factory=dict)

    def on(self, device: torch.device) -> _OnDevice:
        got = self.per_device.get(device)
        if got is None:
            valid = self.valid.to(device)
            batch, seq = valid.shape
            owner = torch.arange(batch, device=device).repeat_interleave(seq)
            got = _OnDevice(valid, valid.reshape(-1), owner)
            self.per_device[device] = got
        return got


def _act_fn_path_possible(moe: MoeLayer) -> bool:
    """Whether the experts run transformers' ``grouped_mm`` forward with a hookable ``act_fn`` module and
    the default gate (``act_fn(gate) * up``): then their own activations can be counted."""
    experts = moe.experts
    config = getattr(experts, "config", None)
    gate = getattr(experts, "_apply_gate", None)
    return (getattr(config, "_experts_implementation", None) == "grouped_mm"
            and isinstance(getattr(experts, "act_fn", None), torch.nn.Module)
            and getattr(gate, "__name__", "") == "_default_apply_gate")


#: Share of expert counts that may differ (by 1, rounding of values at zero) between the experts' own
#: activations and recomputed ones for the act_fn path to be taken; a wrong row mapping moves most of them.
_ROUNDING_SHARE = 1e-4

#: ``torch._int_mm`` (int8 x int8 -> int32, exact) needs more than 16 rows on CUDA.
_INT_MM_MIN_ROWS = 32


class CountingHooks:
    """Registers the counting hooks on ``model`` for ``adapter``; use as a context manager."""

    def __init__(self, model: Any, adapter: Adapter, *, with_sums: bool = False):
        self.model = model
        self.adapter = adapter
        self.with_sums = with_sums
        self.layout = adapter.describe(model)
        self.n_layers = int(self.layout["n_layers"])
        self.n_experts = int(self.layout["n_experts"])
        self._blocks: list[_Block] = []  # in column order
        self._routing: dict[int, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._state: _BatchState | None = None
        self._grouped_ok: dict[str, bool] = {}
        self._int_mm_ok = True
        #: MoE layer -> how its expert activations are counted: "verify" (first batch: both ways),
        #: "act_fn" (the model's own act_fn output, no recomputation) or "recompute".
        self.expert_path: dict[int, str] = {}
        #: (top_k_index, batch state) of the experts call in flight, per MoE layer, for the act_fn hook.
        self._pending: dict[int, tuple[torch.Tensor, _OnDevice]] = {}
        #: MoE layer -> (cells differing, cells compared) between the two ways, from the verified batch.
        self.expert_check: dict[int, tuple[int, int]] = {}
        #: MoE expert hooks: keep padding tokens (sent to the discard row) instead of selecting
        #: the counted ones, which waits for the device. None: on CUDA devices only.
        self.sync_free: bool | None = None
        self._moe = {m.layer: m for m in adapter.moe_layers(model)}
        for j, m in self._moe.items():
            self.expert_path[j] = "verify" if _act_fn_path_possible(m) else "recompute"
        for j in range(self.n_layers):
            if j in self._moe:
                m = self._moe[j]
                self._blocks.append(_Block(layer=j, kind="experts", width=m.expert_width, n_experts=m.n_experts))
                if m.shared_act is not None:
                    self._blocks.append(_Block(layer=j, kind="shared", width=m.shared_width))
            else:
                gate = dict(adapter.gate_proj_modules(model))[j]
                self._blocks.append(_Block(layer=j, kind="dense", width=int(gate.out_features)))
        self.attach()

    def attach(self) -> None:
        """Register the hooks (done by the constructor; again after :meth:`remove`)."""
        if self._handles:
            return
        act = dict(self.adapter.act_modules(self.model))
        for block in self._blocks:
            j = block.layer
            if block.kind == "experts":
                m = self._moe[j]
                self._handles.append(m.router.register_forward_hook(self._router_hook(j)))
                self._handles.append(
                    m.experts.register_forward_pre_hook(self._experts_hook(block, m), with_kwargs=True)
                )
                if self.expert_path[j] != "recompute":
                    self._handles.append(m.experts.act_fn.register_forward_hook(self._expert_act_hook(block, m)))
            elif block.kind == "shared":
                self._handles.append(self._moe[j].shared_act.register_forward_hook(self._dense_hook(block)))
            else:
                self._handles.append(act[j].register_forward_hook(self._dense_hook(block)))

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> CountingHooks:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def remove(self) -> None:
        """Unregister the hooks; the model runs bare until :meth:`attach`."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def start_batch(self, valid: torch.Tensor) -> None:
        """Reset the accumulators for a batch whose real tokens are ``valid`` (B, S) bool."""
        self._state = _BatchState(valid=valid.bool())
        for block in self._blocks:
            block.counts = block.sums = block.check = None
        self._routing.clear()
        self._pending.clear()

    # -- hooks -----------------------------------------------------------------------------
    def _count_positive(self, act: torch.Tensor, on: _OnDevice) -> torch.Tensor:
        """``counts[b, i] = #{t : valid[b, t] and act[b, t, i] > 0}`` as int32 (B, I), exactly.

        One int8 matrix product (``torch._int_mm``, int32 accumulation) of the block-diagonal
        token mask with the sign bits: measured on an H100 at Llama-2-7B width, 0.24 ms per layer
        for a (32, 160, 11008) activation against 0.40 ms for mask-and-reduce
        (``benchmarks/counting_kernels.py``), and faster on CPU too. Where its shape rules are
        not met (width and B*S multiples of 8) or it fails, a masked reduction over the token axis.
        """
        batch, seq, width = act.shape
        positive = act > 0
        if self._int_mm_ok and width % 8 == 0 and (batch * seq) % 8 == 0:
            try:
                return torch._int_mm(on.block_selector(), positive.view(torch.int8).reshape(batch * seq, width))[:batch]
            except (RuntimeError, AttributeError):
                self._int_mm_ok = False
        positive &= on.valid.unsqueeze(-1)
        # Summing a bool tensor is several times slower on CPU than summing its uint8 view.
        return positive.view(torch.uint8).sum(dim=1, dtype=torch.int32)

    def _dense_hook(self, block: _Block):
        def hook(module: Any, args: Any, output: torch.Tensor) -> None:
            on = self._state.on(output.device)
            batch, seq = on.valid.shape
            act = output.reshape(batch, seq, output.shape[-1])
            counts = self._count_positive(act, on)  # (B, I)
            # Each act module runs once per forward: assign, no accumulation needed.
            block.counts = counts if block.counts is None else block.counts + counts
            if self.with_sums:
                sums = torch.where(on.valid.unsqueeze(-1), act, 0).sum(dim=1, dtype=torch.float32)
                block.sums = sums if block.sums is None else block.sums + sums

        return hook

    # On a GPU the MoE hooks never synchronise with the host: padding tokens are not filtered out
    # (that would need their number on the host) but sent to one extra "discard" row of each
    # accumulator. (On CPU the experts hook selects the counted tokens first: less work.)

    def _router_hook(self, layer: int):
        def hook(module: Any, args: Any, output: Any) -> None:
            top_k_index = output[-1]
            on = self._state.on(top_k_index.device)
            batch = on.valid.shape[0]
            n_experts = self.n_experts
            discard = batch * n_experts
            keys = on.owner.unsqueeze(-1) * n_experts + top_k_index.long()  # (B*S, k)
            keys = torch.where(on.valid_flat.unsqueeze(-1), keys, discard).reshape(-1)
            routing = torch.zeros(discard + 1, dtype=torch.int32, device=keys.device)
            routing.index_add_(0, keys, torch.ones_like(keys, dtype=torch.int32))
            self._routing[layer] = routing[:discard].reshape(batch, n_experts)

        return hook

    def _experts_hook(self, block: _Block, moe: MoeLayer):
        width, n_experts = moe.expert_width, moe.n_experts
        names = ("hidden_states", "top_k_index", "top_k_weights")

        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            values = list(args) + [kwargs[n] for n in names[len(args):] if n in kwargs]
            hidden, top_k_index = values[0], values[1]
            on = self._state.on(hidden.device)
            batch = on.valid.shape[0]
            discard = batch * n_experts
            if block.counts is None:  # (B*E + 1, I): row b*E + e, then the discard row
                block.counts = torch.zeros((discard + 1, width), dtype=torch.int32, device=hidden.device)
                if self.with_sums:
                    block.sums = torch.zeros((discard + 1, width), dtype=torch.float32, device=hidden.device)
            path = self.expert_path[block.layer]
            if path == "act_fn":
                self._pending[block.layer] = (top_k_index, on)
                return  # the act_fn hook counts the model's own activations
            # (token, expert) pairs sorted by expert: of all tokens on a GPU (padding goes to the
            # discard row; no wait for the host), of the counted tokens only elsewhere (less work).
            top_k = top_k_index.shape[1]
            sync_free = hidden.is_cuda if self.sync_free is None else self.sync_free
            tokens = None if sync_free else on.valid_flat.nonzero().squeeze(-1)
            picked = top_k_index if tokens is None else top_k_index[tokens]
            flat_expert = picked.reshape(-1).long()  # (N*k,)
            order = torch.argsort(flat_expert, stable=True)
            flat_expert = flat_expert[order]
            flat_token = torch.div(order, top_k, rounding_mode="floor")
            if tokens is not None:
                flat_token = tokens[flat_token]
            per_expert = torch.zeros(n_experts, dtype=torch.int64, device=hidden.device)
            per_expert.index_add_(0, flat_expert, torch.ones_like(flat_expert))
            gate = self._expert_gate(module, hidden[flat_token], per_expert, width)  # (N*k, I)
            act = module.act_fn.forward(gate) if isinstance(module.act_fn, torch.nn.Module) else module.act_fn(gate)
            # One scatter for all experts: row (instruction b, expert e) of a (B*E + 1, I) view.
            key = torch.where(on.valid_flat[flat_token], on.owner[flat_token] * n_experts + flat_expert, discard)
            positive = (act > 0).view(torch.uint8).to(torch.int32)
            block.counts.index_add_(0, key, positive)
            if self.with_sums:
                block.sums.index_add_(0, key, act.float())
            if path == "verify":
                self._pending[block.layer] = (top_k_index, on)  # the act_fn hook counts too, for comparison

        return hook

    def _expert_act_hook(self, block: _Block, moe: MoeLayer):
        """Count the experts' own ``act_fn`` output (``grouped_mm`` experts: one call over every routed
        (token, expert) pair, rows in the order of ``torch.sort`` of the flattened top-k expert ids).

        While a layer is in "verify" mode its counts go to ``block.check`` and are compared, at
        :meth:`collect`, with the recomputed ones; only a layer whose two counts agree switches to
        this path. Any call that does not look like that one (another row count) turns it off.
        """
        n_experts = moe.n_experts

        def hook(module: Any, args: Any, output: torch.Tensor) -> None:
            pending = self._pending.pop(block.layer, None)
            path = self.expert_path[block.layer]
            if pending is None or path == "recompute":
                return
            top_k_index, on = pending
            top_k = top_k_index.shape[-1]
            if output.dim() != 2 or output.shape[0] != top_k_index.numel():
                self.expert_path[block.layer] = "recompute"
                return
            expert_ids, perm = torch.sort(top_k_index.reshape(-1))  # as the grouped_mm experts forward does
            tokens = torch.div(perm, top_k, rounding_mode="floor")
            discard = on.valid.shape[0] * n_experts
            key = torch.where(on.valid_flat[tokens], on.owner[tokens] * n_experts + expert_ids.long(), discard)
            positive = (output > 0).view(torch.uint8).to(torch.int32)
            if path == "verify":
                if block.check is None:
                    block.check = torch.zeros_like(block.counts)
                block.check.index_add_(0, key, positive)
                return
            block.counts.index_add_(0, key, positive)
            if self.with_sums:
                block.sums.index_add_(0, key, output.float())

        return hook

    def _settle_expert_paths(self) -> None:
        """After a batch in "verify" mode: the act_fn path is taken where it counted what recomputing did.

        A wrong row mapping changes a large share of the counts; the model's own gate and the
        recomputed one may differ in rounding (another matmul shape), which can flip the sign of a
        value within an ulp of zero: up to :data:`_ROUNDING_SHARE` of the cells may differ, by 1.
        ``expert_check[layer]`` keeps (cells differing, cells compared).
        """
        for block in self._blocks:
            if block.kind != "experts" or self.expert_path[block.layer] != "verify":
                continue
            ok = False
            if block.check is not None and block.counts is not None:
                # The last row is the discard row of padding tokens (filled by one path only on CPU): not compared.
                diff = (block.check[:-1] - block.counts[:-1]).abs()
                n_diff, cells = int(torch.count_nonzero(diff)), int(diff.numel())
                self.expert_check[block.layer] = (n_diff, cells)
                ok = n_diff <= _ROUNDING_SHARE * cells and (n_diff == 0 or int(diff.max()) <= 1)
            self.expert_path[block.layer] = "act_fn" if ok else "recompute"
            block.check = None

    def _expert_gate(self, module: Any, x: torch.Tensor, per_expert: torch.Tensor, width: int) -> torch.Tensor:
        """``x[r] @ gate_up_proj[e_r, :I].T`` for rows sorted by expert, (N*k, H) -> (N*k, I).

        Uses ``torch.nn.functional.grouped_mm`` where the device and dtype support it, else one
        matmul per expert (the eager experts' arithmetic).
        """
        weight = module.gate_up_proj[:, :width]  # (E, I, H)
        if self._grouped_ok.get(x.device.type, True) and hasattr(F, "grouped_mm"):
            try:
                offs = torch.cumsum(per_expert, 0).to(torch.int32)
                return F.grouped_mm(x.to(weight.dtype), weight.transpose(-2, -1), offs=offs)
            except (RuntimeError, NotImplementedError):
                self._grouped_ok[x.device.type] = False
        out = torch.empty((x.shape[0], width), dtype=x.dtype, device=x.device)
        start = 0
        for e, n in enumerate(per_expert.tolist()):
            if n:
                torch.mm(x[start:start + n], weight[e].T, out=out[start:start + n])
                start += n
        return out

    # -- results ---------------------------------------------------------------------------
    def _block_tensor(self, block: _Block, batch: int, sums: bool) -> torch.Tensor:
        """The block's accumulator as (B, columns of the block), on its device."""
        tensor = block.sums if sums else block.counts
        width = block.width * (block.n_experts if block.kind == "experts" else 1)
        if tensor is None:  # the layer never ran (cannot happen in a full forward)
            return torch.zeros((batch, width), dtype=torch.float32 if sums else torch.int32)
        if block.kind == "experts":  # drop the discard row
            tensor = tensor[: batch * block.n_experts]
        return tensor.reshape(batch, width)

    @staticmethod
    def _to_host(tensor: torch.Tensor) -> torch.Tensor:
        """Copy to the CPU; from a GPU through page-locked memory (measured on an H100: 45 MB in
        0.5 ms instead of 37 ms for a pageable copy). The page-locked block stays owned by the
        returned tensor (and any numpy view of it) until both are freed."""
        if tensor.device.type != "cuda":
            return tensor.cpu()
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        torch.cuda.current_stream(tensor.device).synchronize()
        return host

    def _gather(self, batch: int, sums: bool) -> np.ndarray:
        """All blocks side by side in column order, copied to the CPU once per device.

        Counts travel as 16-bit values (half the bytes): they are at most the padded length S,
        and while S < 65,536 the int16 bit pattern read as uint16 is the count. The result is
        uint16 then, int32 for longer sequences; float32 for sums.
        """
        seq = self._state.valid.shape[1]
        small = not sums and seq < 2**16
        tensors = [self._block_tensor(b, batch, sums) for b in self._blocks]
        out: list[torch.Tensor] = []
        run: list[torch.Tensor] = []

        def flush() -> None:
            joined = torch.cat(run, dim=1) if len(run) > 1 else run[0]
            out.append(self._to_host(joined.to(torch.int16) if small else joined))

        for tensor in tensors:  # concatenate runs of blocks on the same device, then copy
            if run and tensor.device != run[0].device:
                flush()
                run = []
            run.append(tensor)
        flush()
        host = (torch.cat(out, dim=1) if len(out) > 1 else out[0]).numpy()
        return host.view(np.uint16) if small else host

    def collect(self) -> dict[str, np.ndarray | None]:
        """The batch's results on the CPU: counts (B, C) uint16 (int32 if S >= 65,536), routing
        int32 (B, L, E) or None, sums float32 or None."""
        batch = self._state.valid.shape[0]
        self._settle_expert_paths()
        self._pending.clear()
        counts = self._gather(batch, sums=False)
        sums = self._gather(batch, sums=True) if self.with_sums else None
        routing = None
        if self.n_experts:
            routing = np.zeros((batch, self.n_layers, self.n_experts), dtype=np.int32)
            layers = sorted(self._routing)
            if layers:
                first = self._routing[layers[0]].device  # layers on several devices: one copy
                stacked = torch.stack([self._routing[j].to(first) for j in layers], dim=1)
                routing[:, layers] = self._to_host(stacked).numpy()
        return {"counts": counts, "routing": routing, "sums": sums}
