"""isobox: a small OCI runtime built directly on Linux system calls.

It implements the OCI runtime command line (create, start, run, state, kill,
delete, exec, list) for the part of config.json that isobench's suites use.
"""

__version__ = "0.1.0"
