"""LLM backends behind one protocol, prompt templates, and the Ray-parallel proposer."""
