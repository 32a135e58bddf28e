"""Scenario files (YAML): schema, loading with one-line errors, and the runner."""
