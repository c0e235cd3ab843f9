"""`python -m kinema ...`: see kinema.cli."""
import sys

from .cli import main

sys.exit(main())
