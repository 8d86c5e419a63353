"""``python -m sciml`` runs the command line (also what ``torchrun -m sciml`` uses)."""

import sys

from sciml.cli import main

sys.exit(main())
