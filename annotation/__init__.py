"""Validation of HexaInst candidates in Label Studio: two juniors, one senior, agreement."""
