import shutil

import pytest

from helpers import ServerProcess


@pytest.fixture
def server():
    """A fresh real server (spawned Redis, real sockets) for one test."""
    srv = ServerProcess().start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture
def client(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def srv():
    """One real server shared by the tests of a module (they must not interfere:
    give each test its own queue names)."""
    s = ServerProcess().start()
    yield s
    s.stop()
    shutil.rmtree(s.data_dir, ignore_errors=True)


@pytest.fixture
def c(srv):
    client = srv.client()
    yield client
    client.close()
