"""sasim: a hardware/ML co-design simulator for systolic arrays running column-combined LSTMs."""

__version__ = "0.1.0"
