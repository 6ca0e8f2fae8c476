"""Benchmarks: `gql-scheduler bench fire | load | fanout`, each beside its baseline."""
