"""Fixtures of the annotation tests: a real Label Studio server for the session."""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers.py (tests use --import-mode=importlib)
