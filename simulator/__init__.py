"""SignalCraft Fleet load-generation engine."""
