"""`python -m pyoffload.embedded`: the same as `pyoffload-target`."""

import sys

from .cli import main

sys.exit(main())
