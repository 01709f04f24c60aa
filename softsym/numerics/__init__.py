"""Numerical building blocks shared by problems and solvers: row kernels, sketching, CG, Cholesky."""
