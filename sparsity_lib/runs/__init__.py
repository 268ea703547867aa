"""Runs: a configuration, its training (plain and fused), the record it produces, the store that
keeps it, and where missing runs train (local pool, Ray, SLURM). Imports `nets`, `data` and the
top-level leaves; never `pruning`, `study` or `report`."""
