"""The example applications of `examples/`, run for real."""
