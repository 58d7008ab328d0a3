"""The `pdp` command line (DESIGN §8.5): one module per command group."""
