"""softsym.derive: specs → SymPy derivation → exact proof → deterministic emission.

The only part of softsym that imports SymPy.  ``python -m softsym.derive`` regenerates
``generated/``; ``--check`` names stale files.
"""
