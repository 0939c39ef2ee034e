import sys

from avdetect.cli import main

sys.exit(main())
