"""Architecture adapters: where a model's FFN activations are, read from a table (``registry/adapters.json``).

A model is matched by the class of ``model.config`` (or one of its base classes), never by
its name. Each adapter row gives attribute paths; the per-layer structure is then read from
the modules themselves: a layer whose MLP has an ``experts`` module is an MoE layer (router,
fused experts, optional shared expert), any other layer is a dense gated MLP whose
``act_fn`` output is ``act_fn(gate_proj(x))`` of shape ``(..., I)``.

Supported MoE experts: the fused ``transformers`` 5.x layout, ``gate_up_proj`` of shape
``(E, 2I, H)`` with the gate rows first (``is_concatenated`` and not ``is_transposed``) and a
router returning ``(logits, scores, top_k_index)``. transformers 4.x MoE (experts as a
``ModuleList``, the router a plain ``Linear``) is not supported: :func:`adapter_for` says so.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema

from hexainst.kernel.errors import UserError

REGISTRY_FILE = "adapters.json"
SCHEMA_FILE = "adapters.schema.json"


class AdapterError(UserError):
    """No adapter for a model, or its modules do not have the shape the adapter expects."""


@functools.cache
def adapter_table() -> tuple[dict[str, Any], ...]:
    """The adapter rows, validated against ``registry/adapters.schema.json``."""
    folder = resources.files("hexainst.analysis.recording").joinpath("registry")
    table = json.loads(folder.joinpath(REGISTRY_FILE).read_text("utf-8"))
    schema = json.loads(folder.joinpath(SCHEMA_FILE).read_text("utf-8"))
    try:
        jsonschema.validate(table, schema)
    except jsonschema.ValidationError as exc:
        raise AdapterError(f"{REGISTRY_FILE}: {exc.message} at {'/'.join(map(str, exc.absolute_path))}") from exc
    names = [row["config_class"] for row in table["adapters"]]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise AdapterError(f"{REGISTRY_FILE}: config_class listed twice: {', '.join(sorted(dup))}")
    return tuple(table["adapters"])


def _get(obj: Any, path: str, what: str) -> Any:
    for part in path.split("."):
        if not hasattr(obj, part):
            raise AdapterError(f"{what}: {type(obj).__name__} has no attribute {part!r} (path {path!r})")
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class MoeLayer:
    """One MoE layer's modules and sizes."""

    layer: int
    router: Any
    experts: Any
    shared_act: Any | None
    n_experts: int
    top_k: int
    expert_width: int
    shared_width: int


@dataclass(frozen=True)
class Adapter:
    """One row of the adapter table, with helpers that find the modules in a model."""

    config_class: str
    decoder: str
    layers: str
    mlp: str
    act_fn: str
    gate_proj: str
    router: str | None = None
    experts: str | None = None
    shared_expert: str | None = None

    # -- modules ---------------------------------------------------------------------------
    def decoder_module(self, model: Any) -> Any:
        """The base model (no LM head) whose forward the recorder runs."""
        try:
            return _get(model, self.decoder, "decoder")
        except AdapterError:
            # Already the base model (e.g. a LlamaModel rather than LlamaForCausalLM).
            try:
                _get(model, self.layers, "layers")
            except AdapterError:
                raise AdapterError(
                    f"{type(model).__name__} has neither the decoder {self.decoder!r} nor the layers {self.layers!r} "
                    f"that the {self.config_class} adapter expects"
                ) from None
            return model

    def layer_modules(self, model: Any) -> list[Any]:
        return list(_get(self.decoder_module(model), self.layers, "layers"))

    def mlp_module(self, layer: Any) -> Any:
        return _get(layer, self.mlp, "mlp")

    def is_moe_layer(self, layer: Any) -> bool:
        return self.experts is not None and hasattr(self.mlp_module(layer), self.experts)

    def act_modules(self, model: Any) -> list[tuple[int, Any]]:
        """``(layer, module)`` for every dense gated MLP: the module's output is ``act_fn(gate_proj(x))``."""
        return [
            (j, _get(self.mlp_module(layer), self.act_fn, f"layer {j} act_fn"))
            for j, layer in enumerate(self.layer_modules(model))
            if not self.is_moe_layer(layer)
        ]

    def gate_proj_modules(self, model: Any) -> list[tuple[int, Any]]:
        """``(layer, gate_proj Linear)`` for every dense gated MLP."""
        return [
            (j, _get(self.mlp_module(layer), self.gate_proj, f"layer {j} gate_proj"))
            for j, layer in enumerate(self.layer_modules(model))
            if not self.is_moe_layer(layer)
        ]

    def moe_layers(self, model: Any) -> list[MoeLayer]:
        """The MoE layers, with their router, fused experts and shared expert's ``act_fn``."""
        out = []
        for j, layer in enumerate(self.layer_modules(model)):
            if not self.is_moe_layer(layer):
                continue
            mlp = self.mlp_module(layer)
            experts = _get(mlp, self.experts, f"layer {j} experts")
            router = _get(mlp, self.router, f"layer {j} router") if self.router else None
            if router is None or not hasattr(router, "top_k"):
                raise AdapterError(
                    f"layer {j}: the router {type(router).__name__} has no top_k; transformers 4.x MoE layers "
                    "(router = Linear, experts = ModuleList) are not supported, use transformers >= 5"
                )
            weight = getattr(experts, "gate_up_proj", None)
            if weight is None or weight.dim() != 3:
                raise AdapterError(
                    f"layer {j}: {type(experts).__name__} has no fused gate_up_proj (E, 2I, H); "
                    "transformers 4.x ModuleList experts are not supported"
                )
            if getattr(experts, "is_transposed", False) or not getattr(experts, "is_concatenated", True):
                raise AdapterError(f"layer {j}: transposed or interleaved gate_up_proj layouts are not supported yet")
            shared_act, shared_width = None, 0
            if self.shared_expert and getattr(mlp, self.shared_expert, None) is not None:
                shared = getattr(mlp, self.shared_expert)
                shared_act = _get(shared, self.act_fn, f"layer {j} shared expert act_fn")
                shared_width = int(_get(shared, self.gate_proj, f"layer {j} shared expert gate_proj").out_features)
            out.append(MoeLayer(
                layer=j, router=router, experts=experts, shared_act=shared_act,
                n_experts=int(weight.shape[0]), top_k=int(router.top_k),
                expert_width=int(weight.shape[1]) // 2, shared_width=shared_width,
            ))
        return out

    # -- layout ----------------------------------------------------------------------------
    def describe(self, model: Any) -> dict[str, Any]:
        """Column blocks ``(layer, expert, width)`` and sizes, in store column order.

        Dense layers give one block with expert ``-1``; MoE layers give ``E`` routed blocks
        then, if present, the shared expert as expert ``E``.
        """
        layers = self.layer_modules(model)
        moe = {m.layer: m for m in self.moe_layers(model)}
        n_experts = {m.n_experts for m in moe.values()}
        top_k = {m.top_k for m in moe.values()}
        if len(n_experts) > 1 or len(top_k) > 1:
            raise AdapterError("MoE layers with different expert counts or top-k are not supported")
        e = n_experts.pop() if n_experts else 0
        blocks: list[tuple[int, int, int]] = []
        for j, layer in enumerate(layers):
            if j in moe:
                m = moe[j]
                blocks += [(j, k, m.expert_width) for k in range(e)]
                if m.shared_act is not None:
                    blocks.append((j, e, m.shared_width))
            else:
                gate = _get(self.mlp_module(layer), self.gate_proj, f"layer {j} gate_proj")
                blocks.append((j, -1, int(gate.out_features)))
        return {"blocks": blocks, "n_layers": len(layers), "n_experts": e, "top_k": top_k.pop() if top_k else 0}


def adapter_for(model_or_config: Any) -> Adapter:
    """The adapter for a model (or its config), looked up by the config's class and its bases."""
    config = getattr(model_or_config, "config", model_or_config)
    rows = {row["config_class"]: row for row in adapter_table()}
    for cls in type(config).__mro__:
        row = rows.get(cls.__name__)
        if row is not None:
            return Adapter(**row)
    raise AdapterError(
        f"no recording adapter for config class {type(config).__name__}; supported: {', '.join(sorted(rows))}. "
        "Add a row to analysis/recording/registry/adapters.json if the model has the same module layout"
    )
