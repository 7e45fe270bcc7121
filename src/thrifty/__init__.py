"""thrifty: make language models spend compute where it pays."""

__version__ = "0.1.0"
