"""SignalCraft Fleet load-generation engine."""

__version__ = "0.1.0"
