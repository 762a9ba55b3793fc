"""`python -m prefactor_local` runs the `prefactor-local` command."""

import sys

from prefactor_local.cli import main

sys.exit(main())
