"""Gradient estimators that use loss values only."""
