"""``python -m legalft.train RUN_DIR``: train the run in RUN_DIR (see legalft.train.runner)."""

import sys

from legalft.train.runner import main

sys.exit(main())
