"""Benchmarks for snapdir: ``python -m benchmarks --store s3://bucket/prefix`` (see README)."""
