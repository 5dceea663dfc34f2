"""Evaluation: accuracy on the eval split, latency per shape, peak memory, size on disk."""
