"""Symbolic bounds under declared assumptions: one module per family."""
