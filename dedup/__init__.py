"""Near-duplicate detection: exact hashing, MinHash-LSH, clustering and keep-best."""
