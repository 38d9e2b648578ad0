"""HTTP only: one module per resource; errors and shared parameters in one place each."""
