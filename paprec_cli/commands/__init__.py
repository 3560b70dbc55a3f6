"""Thin Typer shells over core functions; one module per command group."""
