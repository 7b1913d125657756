"""Backend-agnostic execution: the worker loop, one trial, the training loop (no submitit here)."""
