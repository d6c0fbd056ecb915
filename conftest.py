"""Top-level pytest configuration: keep generated and installed trees out of collection.

The isobench plugin itself is loaded through its entry point, so
``pytest suites/`` works from any directory.
"""

collect_ignore = ["reports", ".venv", "build", "dist"]
