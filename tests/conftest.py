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
