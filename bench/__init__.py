"""fitbench: a benchmark suite for image-fitting neural representations."""

__version__ = "0.1.0"
