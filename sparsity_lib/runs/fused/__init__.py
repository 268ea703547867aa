"""Fused training: N runs differing only in optimizer hyperparameters and seed trained as one wide
network, producing records identical in format to `runs.training`'s."""
