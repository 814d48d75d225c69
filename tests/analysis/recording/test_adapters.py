"""The adapter table: schema, lookup by config class, and the modules it finds."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest
import torch
import transformers as tf

from hexainst.analysis.recording.adapters import AdapterError, adapter_for, adapter_table
from hexainst.analysis.recording.testing import tiny_config, tiny_model


def test_table_validates_and_names_real_config_classes():
    folder = resources.files("hexainst.analysis.recording").joinpath("registry")
    table = json.loads(folder.joinpath("adapters.json").read_text())
    schema = json.loads(folder.joinpath("adapters.schema.json").read_text())
    jsonschema.validate(table, schema)
    for row in adapter_table():
        assert hasattr(tf, row["config_class"]), row["config_class"]
    bad = dict(table, adapters=[{"config_class": "LlamaConfig"}])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_lookup_is_by_config_class_and_its_bases():
    assert adapter_for(tiny_config("llama")).config_class == "LlamaConfig"
    assert adapter_for(tiny_config("qwen2moe")).shared_expert == "shared_expert"

    class MyLlamaConfig(tf.LlamaConfig):
        model_type = "my-llama-variant"

    assert adapter_for(MyLlamaConfig(**tiny_config("llama").to_dict())).config_class == "LlamaConfig"
    # A model whose *name* says llama but whose config is GPT-2 is not matched.
    gpt2 = tf.GPT2Config(n_layer=1, n_embd=16, n_head=2, name_or_path="meta-llama/Llama-2-7b-hf")
    with pytest.raises(AdapterError, match="no recording adapter for config class GPT2Config"):
        adapter_for(gpt2)


@pytest.mark.parametrize("kind", ["llama", "mistral", "gemma3"])
def test_act_modules_output_is_act_of_gate_proj(kind):
    model = tiny_model(kind)
    adapter = adapter_for(model)
    acts = adapter.act_modules(model)
    assert [j for j, _ in acts] == list(range(model.config.num_hidden_layers))
    seen, inputs = {}, {}
    hooks = [m.register_forward_hook(lambda mod, a, out, j=j: seen.__setitem__(j, out)) for j, m in acts]
    hooks += [layer.mlp.register_forward_pre_hook(lambda mod, a, j=j: inputs.__setitem__(j, a[0]))
              for j, layer in enumerate(model.model.layers)]
    with torch.no_grad():
        model(torch.tensor([[1, 5, 9, 12, 3]]))
    for h in hooks:
        h.remove()
    gates = dict(adapter.gate_proj_modules(model))
    act = model.model.layers[0].mlp.act_fn
    for j, out in seen.items():
        assert out.shape == (1, 5, model.config.intermediate_size)
        torch.testing.assert_close(out, act(inputs[j] @ gates[j].weight.T), rtol=0, atol=1e-6)
    # Zeroing one neuron through the act module's output (the metrics helper's causal check) works.
    j, module = acts[1]
    handle = module.register_forward_hook(lambda mod, a, out: out.index_fill(-1, torch.tensor([0]), 0.0))
    with torch.no_grad():
        changed = model(torch.tensor([[1, 5, 9, 12, 3]])).logits
    handle.remove()
    with torch.no_grad():
        plain = model(torch.tensor([[1, 5, 9, 12, 3]])).logits
    assert not torch.equal(changed, plain)


def test_describe_gives_the_store_layout():
    qwen = tiny_model("qwen2moe")
    layout = adapter_for(qwen).describe(qwen)
    cfg = qwen.config
    assert layout["n_experts"] == cfg.num_experts and layout["top_k"] == cfg.num_experts_per_tok
    expected = []
    for j in range(cfg.num_hidden_layers):
        if j in cfg.mlp_only_layers:
            expected.append((j, -1, cfg.intermediate_size))
        else:
            expected += [(j, e, cfg.moe_intermediate_size) for e in range(cfg.num_experts)]
            expected.append((j, cfg.num_experts, cfg.shared_expert_intermediate_size))
    assert layout["blocks"] == expected
    mix = tiny_model("mixtral")
    mix_layout = adapter_for(mix).describe(mix)
    assert all(e < mix.config.num_local_experts for _, e, _ in mix_layout["blocks"])  # no shared expert
