"""Suites: the YAML schema, the line-aware loader and the expectation matchers."""
