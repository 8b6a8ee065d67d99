"""Benchmark commands that print figures: ``python -m nanoforge.bench <name> [options]``.

Each benchmark is a module ``nanoforge.bench.<name>`` with a ``main(argv)`` function.
"""
