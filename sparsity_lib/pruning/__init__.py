"""Removing dead features (paper Sec. 5.2): the criteria of each method, the exact surgery with BN
folding, what a network costs, fine-tuning and zeroing. Reads runs through `runs`."""
