import sys

from hexainst.cli import main

sys.exit(main())
