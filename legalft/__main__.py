from legalft.cli import main
import sys
sys.exit(main())
