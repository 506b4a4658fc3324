"""The kernel every other package may import: errors and exit codes, :class:`Secret`, the
one-line argument parser. It imports nothing from the project."""
