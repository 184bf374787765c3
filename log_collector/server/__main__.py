"""``python -m log_collector.server``: the ``log-collector serve`` command."""

import sys

from .command import run_standalone

sys.exit(run_standalone())
