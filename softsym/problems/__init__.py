"""The problems: data bound to a family's generated kernels, one module per family."""
