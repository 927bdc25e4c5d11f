"""The pure core: ticking, drain and shedding plans, rebalancing, ids and close codes.

Nothing here imports Django, psutil, Redis or a server, nor any module that does; time and
randomness come in as arguments. ``make test`` enforces it (import-linter, see pyproject.toml).
"""
