"""Fairness metrics over groups of samples (demographic parity and its relatives)."""
