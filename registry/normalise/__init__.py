"""Normalisation and validation of identity fields: pure functions, no I/O."""
