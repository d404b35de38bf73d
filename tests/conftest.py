import pytest
import pytest_twisted
from inproc import SpawnedRedis

from helpers import ServerProcess


@pytest_twisted.async_yield_fixture(scope="module")
async def redis():
    """A real redis-server for the in-process tests of a module (give each
    test its own key prefix)."""
    r = await SpawnedRedis().start()
    yield r
    await r.stop()


@pytest.fixture
def server():
    """A fresh real server (spawned Redis, real sockets) for one test."""
    srv = ServerProcess().start()
    yield srv
    srv.discard()


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
    s.discard()


@pytest.fixture
def c(srv):
    client = srv.client()
    yield client
    client.close()
