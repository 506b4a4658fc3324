"""Reporting: the run folder (output), summary, stage table, exports, HTML, compare, and the per-sample streams."""
