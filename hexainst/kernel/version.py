"""The toolkit's version, in the kernel so that every module may name it (``hexainst.__version__`` re-exports it)."""

__version__ = "0.1.0"
