"""How a spec becomes formulas, proofs and emitted kernels: one module per family."""
