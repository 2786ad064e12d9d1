"""Attribute taxonomy: the model, its loader, the shipped seeds, and sampling from it."""
