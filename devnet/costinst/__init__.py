"""Helpers of the idle-cost measurement tool (devnet/cost_breakdown.py); not product code.

``sitecustomize.py`` and ``_cost_hooks.py`` are loaded into the measured nodes,
``summarize.py`` turns results into tables, ``spy_classify.py`` sorts py-spy stacks.
"""
