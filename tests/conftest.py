import sys
from pathlib import Path

import pytest

# Lets any test (and tests/server/) write `from receiver import Receiver`.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture
def receiver():
    """A started stand-in ingest server on 127.0.0.1, stopped after the test."""
    from receiver import Receiver

    with Receiver() as started:
        yield started
