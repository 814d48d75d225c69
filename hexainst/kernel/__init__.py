"""The kernel: what every stage shares, importing no stage.

The record schema and vocabularies, the release's features, reader and writer, atomic writes,
errors, and the contracts between stages (pool files, the validation file, the activation
store's header). Stages import from here; the kernel never imports a stage or the shell.
"""
