"""Development helpers shared by the tests and the benchmarks of a checkout (not shipped):
``cowrite_dev.services`` starts PostgreSQL, Redis, nginx and ``cowrite serve`` as child processes.
"""
