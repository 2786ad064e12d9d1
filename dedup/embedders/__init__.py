"""Sentence embedders behind one protocol: static (default), transformer, endpoint."""

from dedup.embedders.base import Embedder
from dedup.embedders.factory import create_embedder

__all__ = ["Embedder", "create_embedder"]
