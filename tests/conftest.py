import os
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("RNNGAN_NO_PROGRESS", "1")


def benchmark_module(name: str):
    """benchmarks/<name>.py imported as module `name` for a test module's fixture (yield from it):
    registered in sys.modules while in use, since dataclasses look their module up there."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, PROJECT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


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
