"""prune-lut: per-device latency lookup tables, and MetaPruning channel search that uses them."""
__version__ = "0.1.0"
