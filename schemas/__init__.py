"""Data contracts of populace: run config, runtime records and Parquet table schemas."""
