"""Assembly: candidate pools (+ validation outcomes) -> the balanced release and its reserve."""

from hexainst.builders.release.assemble import assemble
from hexainst.builders.release.select import AssemblyError, select_cell

__all__ = ["AssemblyError", "assemble", "select_cell"]
