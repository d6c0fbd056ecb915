"""isobench: declarative conformance tests and benchmarks for container runtimes."""

__version__ = "0.1.0"
