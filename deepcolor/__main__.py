import sys

from deepcolor.cli import main

sys.exit(main())
