import sys

from legalft.cli import main

sys.exit(main())
