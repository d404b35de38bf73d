"""A pyfaktory Consumer as a user would write it, run by test_interop_pyfaktory.

usage: python pyfaktory_worker.py <faktory url> <record file> <queue,queue,...>

``record`` jobs append one JSON line (args, jid-free) to the record file;
``boom`` jobs raise, so pyfaktory sends FAIL with the traceback.
"""

import json
import sys
import time

from pyfaktory import Client, Consumer

RECORD = sys.argv[2]


def record(*args):
    with open(RECORD, "a") as f:
        f.write(json.dumps({"args": list(args), "at": time.time()}) + "\n")


def boom(n):
    raise ValueError(f"kaboom {n}")


if __name__ == "__main__":
    client = Client(faktory_url=sys.argv[1], role="consumer", worker_id="pyfaktory-interop")
    client.connect()
    consumer = Consumer(
        client=client, queues=sys.argv[3].split(","), priority="strict", concurrency=1
    )
    consumer.register("record", record)
    consumer.register("boom", boom)
    consumer.run()
