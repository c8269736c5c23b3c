"""Datasets: generated tasks and (later) registry-packaged datasets converted into a local cache."""

from .copying import copying_batch, copying_length, memoryless_baseline

__all__ = ["copying_batch", "copying_length", "memoryless_baseline"]
