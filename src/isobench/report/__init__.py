"""Reports of a run directory: summary.md, index.html and CSV tables."""

from isobench.report.render import render

__all__ = ["render"]
