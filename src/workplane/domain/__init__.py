"""Pure values and rules of the domain: no I/O."""
