"""Tiny random-weight models, a word-level tokenizer and made-up rows, for tests and benchmarks.

Everything here is built locally (no Hub access): the tokenizer with the ``tokenizers``
library, the models from real ``transformers`` config classes with random weights.
"""

from __future__ import annotations

import random

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

WORDS = (
    "classify the sentiment of this review write a python function that returns sum list numbers "
    "who wrote novel what is capital france compose short poem about autumn rain solve for x in "
    "equation summarize following article news report city council voted new park budget please "
    "explain answer briefly text topic sports politics science code math question story"
).split()


def make_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` made-up instructions of varied length (3..40 words), with ids and categories."""
    rng = random.Random(seed)
    categories = ["classification", "code", "generalqa", "generation", "math", "summarization"]
    rows = []
    for i in range(n):
        length = rng.randint(3, 40)
        text = " ".join(rng.choice(WORDS) for _ in range(length))
        rows.append({"id": f"row-{i:03d}", "category": categories[i % 6],
                     "source": "natural" if i % 2 else "synthetic", "instruction": text})
    return rows


def make_tokenizer():
    """A word-level fast tokenizer that adds a BOS token, built with the ``tokenizers`` library."""
    from transformers import PreTrainedTokenizerFast  # deferred: transformers (~1 s); make_rows needs none of it

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(WORDS)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


VOCAB = 4 + len(set(WORDS))


def _common(**extra):
    base = dict(vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    base.update(extra)
    return base


def tiny_config(kind: str):
    """A tiny config of a real architecture class."""
    import transformers as tf  # deferred: transformers (~1 s); make_rows needs none of it

    if kind == "llama":
        return tf.LlamaConfig(**_common())
    if kind == "mistral":
        return tf.MistralConfig(**_common(sliding_window=None))
    if kind == "gemma3":
        return tf.Gemma3TextConfig(**_common(head_dim=8, sliding_window=16, query_pre_attn_scalar=8))
    if kind == "qwen2moe":
        return tf.Qwen2MoeConfig(**_common(num_experts=6, num_experts_per_tok=2, moe_intermediate_size=24,
                                           shared_expert_intermediate_size=40, decoder_sparse_step=1,
                                           mlp_only_layers=[1], norm_topk_prob=False))
    if kind == "mixtral":
        return tf.MixtralConfig(**_common(num_local_experts=4, num_experts_per_tok=2, sliding_window=None))
    raise KeyError(kind)


KINDS = ("llama", "mistral", "gemma3", "qwen2moe", "mixtral")


def tiny_model(kind: str, seed: int = 0, config=None):
    """A random-weight causal LM of that architecture, fp32, eval mode, eager experts."""
    from transformers import AutoModelForCausalLM  # deferred: transformers (~1 s); make_rows needs none of it

    torch.manual_seed(seed)
    config = tiny_config(kind) if config is None else config
    config._experts_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Random init makes gate pre-activations tiny; scale them up so signs vary clearly.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2 and "embed" not in name:
                param.normal_(0.0, 0.2)
    return model.eval()
