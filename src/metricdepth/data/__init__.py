"""Datasets: the one sample format, benchmark readers and (later) the synthetic scene generator."""

from .sample import Sample, validate_sample

__all__ = ["Sample", "validate_sample"]
