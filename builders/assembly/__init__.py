"""Assembly: candidate pools (+ validation outcomes) -> the balanced release and its reserve."""

from hexainst.builders.assembly.assemble import assemble
from hexainst.builders.assembly.select import AssemblyError, select_cell

__all__ = ["AssemblyError", "assemble", "select_cell"]
