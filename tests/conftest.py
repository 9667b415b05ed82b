import os
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("RNNGAN_NO_PROGRESS", "1")


@pytest.fixture
def server():
    """A loopback HTTP server on 127.0.0.1 (tests/loopback.py); routes are set per test."""
    from loopback import running_server

    yield from running_server()
