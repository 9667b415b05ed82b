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


@pytest.fixture(scope="session")
def finished_project(tmp_path_factory):
    """The real `dvc repro` of the default pipeline at tiny params (tests/project.py TINY), run
    once per session and committed. Read-only: tests that change things work on `clone_repo`."""
    from project import TINY, make_repo

    r = make_repo(tmp_path_factory.mktemp("finished") / "project", TINY)
    r.first_repro = r.dvc("repro")
    r.commit("first repro")
    return r
