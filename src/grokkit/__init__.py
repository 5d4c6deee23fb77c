"""grokkit: reproduce and extend "Grokking" (Power et al., 2022)."""

__version__ = "0.1.0"
