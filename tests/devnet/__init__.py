"""Tests of the devnet (devnet/cluster.py, table.py, commands.py) and the benchmark logic."""
