"""Whole-mesh scenarios on the simulation toolkit (devnet/testing.py)."""
