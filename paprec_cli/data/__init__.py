"""Interaction tables, import/storage, splits and negative sampling (dataset-agnostic)."""
