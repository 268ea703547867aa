"""Datasets and loaders (paper Sec. 2.1): the in-memory split type, the real datasets read from disk,
the synthetic shapes stand-in, the seeded batch loaders, and `load_dataset`, the one entry point.
Imports only `sparsity_lib.validation` from the rest of the package."""
