import sys

from cdh.cli import main

sys.exit(main())
