"""Benchmarks of the read API against a raw-SQL floor: ``python -m bench`` runs them all."""
