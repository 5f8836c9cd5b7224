"""cxrbench: reproducible chest-radiograph benchmarks (JSRT, SCR, NIH ChestX-ray14, Google labels)."""

__version__ = "0.1.0"
