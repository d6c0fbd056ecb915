"""Regression tracking: two run directories compared, and interleaved A/B sessions."""
