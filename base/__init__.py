"""The base below every platform: settings, the unit of work, faults, the web shell, progress.

Imports nothing else of the project (checked by import-linter, `make lint`).
"""
