"""Data tables of the recording package (adapters.json and its schema)."""
