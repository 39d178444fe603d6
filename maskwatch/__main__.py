import sys

from maskwatch.cli import main

sys.exit(main())
