"""Allow ``python -m vcs_acme``."""

import sys

from vcs_acme.cli import main

sys.exit(main())
