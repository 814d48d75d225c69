"""SPARCOM: record FFN activations and router choices, find instruction-specific neurons and experts, compare them."""
