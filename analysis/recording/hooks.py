"""Forward hooks that count positive FFN activations per instruction, in int32 on each layer's device.

One :class:`CountingHooks` object is attached to a model for a whole recording. Before each
batch, :meth:`CountingHooks.start_batch` gives it the mask of real tokens ``valid`` (B, S);
the hooks then add, per instruction ``b``:

- dense gated MLP layer ``j`` (hook on ``act_fn``, output ``A`` of shape (B, S, I) or (B*S, I)):
  ``counts[b, i] += #{t : valid[b, t] and A[b, t, i] > 0}``;
- MoE router (forward hook, output ``(logits, scores, top_k_index)``, index (B*S, k)):
  ``routing[b, e] += #{t : valid[b, t] and e in top_k_index[t]}``;
- MoE fused experts (forward pre-hook, inputs ``(hidden (B*S, H), top_k_index, top_k_weights)``):
  for every expert ``e``, the tokens routed to it are gathered and
  ``A_e = act_fn(hidden[tokens] @ gate_up_proj[e, :I].T)`` recomputed (one grouped matmul over
  all experts where ``torch.nn.functional.grouped_mm`` runs, else one matmul per expert), then
  ``counts_e[b, i] += #{t routed to e : valid[b, t] and A_e[t, i] > 0}``;
- the shared expert's ``act_fn`` counts like a dense layer (every token is routed to it).

Nothing but these (B, width) integer accumulators (and optional float32 sums) outlives a
hook call: full activation tensors are never kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from analysis.recording.adapters import Adapter, MoeLayer


@dataclass
class _Block:
    """Accumulators of one column block family on one device."""

    layer: int
    kind: str  # "dense" | "experts" | "shared"
    width: int  # neurons per expert (experts) or per block
    n_experts: int = 0
    counts: torch.Tensor | None = None  # int32 (B, width) or, for experts, (B, E, width)
    sums: torch.Tensor | None = None  # float32, same shape as counts


@dataclass
class _BatchState:
    valid: torch.Tensor  # bool (B, S), on the input device
    per_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(valid (B, S) bool, valid_flat (B*S,) bool, batch_of_token (B*S,) int64) on ``device``."""
        got = self.per_device.get(device)
        if got is None:
            valid = self.valid.to(device)
            batch, seq = valid.shape
            owner = torch.arange(batch, device=device).repeat_interleave(seq)
            got = (valid, valid.reshape(-1), owner)
            self.per_device[device] = got
        return got


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
        self._moe = {m.layer: m for m in adapter.moe_layers(model)}
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
            elif block.kind == "shared":
                self._handles.append(self._moe[j].shared_act.register_forward_hook(self._dense_hook(block)))
            else:
                self._handles.append(act[j].register_forward_hook(self._dense_hook(block)))

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "CountingHooks":
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
            block.counts = block.sums = None
        self._routing.clear()

    # -- hooks -----------------------------------------------------------------------------
    def _acc(self, block: _Block, shape: tuple[int, ...], device: torch.device) -> None:
        if block.counts is None:
            block.counts = torch.zeros(shape, dtype=torch.int32, device=device)
            if self.with_sums:
                block.sums = torch.zeros(shape, dtype=torch.float32, device=device)

    def _dense_hook(self, block: _Block):
        def hook(module: Any, args: Any, output: torch.Tensor) -> None:
            state = self._state
            valid, _, _ = state.on(output.device)
            batch, seq = valid.shape
            act = output.reshape(batch, seq, output.shape[-1])
            mask = valid.unsqueeze(-1)
            positive = act > 0
            positive &= mask
            # Summing a bool tensor is several times slower on CPU than summing its uint8 view.
            counts = positive.view(torch.uint8).sum(dim=1, dtype=torch.int32)  # (B, I)
            # Each act module runs once per forward: assign, no accumulation needed.
            block.counts = counts if block.counts is None else block.counts + counts
            if self.with_sums:
                sums = torch.where(mask, act, 0).sum(dim=1, dtype=torch.float32)
                block.sums = sums if block.sums is None else block.sums + sums

        return hook

    def _router_hook(self, layer: int):
        def hook(module: Any, args: Any, output: Any) -> None:
            top_k_index = output[-1]
            state = self._state
            _, valid_flat, owner = state.on(top_k_index.device)
            batch = state.valid.shape[0]
            n_experts = self.n_experts
            picked = top_k_index[valid_flat]  # (N_valid, k)
            keys = owner[valid_flat].unsqueeze(-1) * n_experts + picked.long()
            routing = torch.bincount(keys.reshape(-1), minlength=batch * n_experts)
            self._routing[layer] = routing.reshape(batch, n_experts).to(torch.int32)

        return hook

    def _experts_hook(self, block: _Block, moe: MoeLayer):
        width, n_experts = moe.expert_width, moe.n_experts
        names = ("hidden_states", "top_k_index", "top_k_weights")

        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            values = list(args) + [kwargs[n] for n in names[len(args):] if n in kwargs]
            hidden, top_k_index = values[0], values[1]
            state = self._state
            _, valid_flat, owner = state.on(hidden.device)
            batch = state.valid.shape[0]
            self._acc(block, (batch, n_experts, width), hidden.device)
            # (token, expert) pairs of the counted tokens, sorted by expert.
            tokens = valid_flat.nonzero().squeeze(-1)  # (N,)
            expert_of = top_k_index[tokens].long()  # (N, k)
            flat_expert = expert_of.reshape(-1)  # (N*k,)
            flat_token = tokens.repeat_interleave(expert_of.shape[1])
            order = torch.argsort(flat_expert, stable=True)
            flat_expert, flat_token = flat_expert[order], flat_token[order]
            per_expert = torch.bincount(flat_expert, minlength=n_experts)  # (E,)
            gate = self._expert_gate(module, hidden[flat_token], per_expert, width)  # (N*k, I)
            act = module.act_fn(gate)
            # One scatter for all experts: row (instruction b, expert e) of a (B*E, I) view.
            key = owner[flat_token] * n_experts + flat_expert
            positive = (act > 0).view(torch.uint8).to(torch.int32)
            block.counts.view(batch * n_experts, width).index_add_(0, key, positive)
            if self.with_sums:
                block.sums.view(batch * n_experts, width).index_add_(0, key, act.float())

        return hook

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
        return tensor.reshape(batch, width)

    def _gather(self, batch: int, sums: bool) -> np.ndarray:
        """All blocks side by side in column order, copied to the CPU once per device."""
        tensors = [self._block_tensor(b, batch, sums) for b in self._blocks]
        out: list[torch.Tensor] = []
        run: list[torch.Tensor] = []
        for tensor in tensors:  # concatenate runs of blocks on the same device, then copy
            if run and tensor.device != run[0].device:
                out.append(torch.cat(run, dim=1).cpu())
                run = []
            run.append(tensor)
        out.append(torch.cat(run, dim=1).cpu())
        return torch.cat(out, dim=1).numpy()

    def collect(self) -> dict[str, np.ndarray | None]:
        """The batch's results on the CPU: counts int32 (B, C), routing int32 (B, L, E) or None, sums float32 or None."""
        batch = self._state.valid.shape[0]
        counts = self._gather(batch, sums=False)
        sums = self._gather(batch, sums=True) if self.with_sums else None
        routing = None
        if self.n_experts:
            routing = np.zeros((batch, self.n_layers, self.n_experts), dtype=np.int32)
            for layer, tensor in self._routing.items():
                routing[:, layer] = tensor.cpu().numpy()
        return {"counts": counts, "routing": routing, "sums": sums}
