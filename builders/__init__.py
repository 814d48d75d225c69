"""Stages that turn public sources and generators into HexaInst candidate pools and the release."""
