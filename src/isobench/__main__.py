"""Allow ``python -m isobench``."""

import sys

from isobench.cli import main

sys.exit(main())
