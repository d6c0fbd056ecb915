import sys

from isobox.cli import main

sys.exit(main())
