"""The continuity checker: a cluster under faults, page-like clients, and a checker.

``python -m chaos`` (``make chaos``) starts Redis, three nodes and HAProxy, a few hundred clients
that behave like the page, and a nemesis that kills, stops, partitions and skews on a seeded
schedule; after healing, :mod:`chaos.checker` judges the recorded histories.
"""
