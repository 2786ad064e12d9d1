"""Prefect flows that wire the stages, and the populace CLI."""
