"""The run folder: atomic shards, pandera-checked tables, manifest, DuckDB catalog."""
