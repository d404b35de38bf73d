"""Micro-benchmark of the server's Redis command path (faktory.redisconn):
CPU microseconds per pipelined command against a throwaway redis-server.

    python bench/redis_client.py [--commands 100000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, endpoints, reactor  # noqa: E402

from faktory.redisconn import RedisClient  # noqa: E402
from faktory.redisproc import find_redis_server  # noqa: E402


async def run(sock: str, n: int) -> None:
    c = RedisClient(endpoints.UNIXClientEndpoint(reactor, sock), reactor)
    await c.start()
    started = time.process_time()
    for _ in range(n // 100):
        await defer.gatherResults([c.execute_command("INCR", "k") for _ in range(100)])
    per = (time.process_time() - started) / n * 1e6
    sys.stdout.write(f"{n} pipelined commands: {per:.1f} us of client CPU per command\n")
    await c.disconnect()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--commands", type=int, default=100000)
    args = p.parse_args()
    d = tempfile.mkdtemp(prefix="fkrb", dir="/tmp")
    sock = os.path.join(d, "r.sock")
    redis = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--unixsocket", sock, "--save", "", "--dir", d],
        stdout=subprocess.DEVNULL,
    )
    try:
        while not os.path.exists(sock):
            time.sleep(0.02)
        d_ = defer.ensureDeferred(run(sock, args.commands))
        d_.addErrback(lambda f: f.printTraceback())
        d_.addBoth(lambda _: reactor.stop())
        reactor.run()
    finally:
        redis.terminate()
        redis.wait()


if __name__ == "__main__":
    main()
