"""A JetStream consumer group for one kvdb node's change events (config/jetstream.example.yaml
publishes them): several worker processes share one durable pull consumer, so JetStream hands
each event to one worker, and an event a worker took but did not acknowledge within
``ack_wait`` goes to another. Run it beside the node:

    python config/jetstream_consumer.py --node a --workers 3

What a worker must still do itself (the bridge's promise is "each event once in the stream, in
order"; delivery to consumers is JetStream's at-least-once):

- **De-duplicate by seq.** A redelivered event carries the same ``Kvdb-Seq`` (and message id
  ``<node>:<epoch>:<seq>``); make handling idempotent, e.g. record ``(node, epoch, seq)`` with
  the effect, or upsert with a version guard on ``(hlc, origin)``.
- **Order.** Workers run in parallel, so two events of one key may be handled out of order
  across workers. Compare versions (``hlc``, then ``origin``) before applying, as here, or give
  each worker its own filtered consumer (``kvdb.a.users.>``, ``kvdb.a.orders.>``...) so a
  key's events stay with one worker.

Subjects are ``<prefix>.<node>.<key tokens>`` (sync/targets/subjects.py: ``/`` splits tokens,
other bytes outside ``A-Za-z0-9_-`` are ``%XX``); the payload is the change event's JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import signal
import sys

import nats
import orjson
from nats.js.api import AckPolicy, ConsumerConfig


def handle(worker: int, event: dict, headers: dict[str, str]) -> None:
    """The work: here, print it. Replace with yours (idempotent: see the module docstring)."""
    line = (
        f"worker {worker} seq {headers.get('Kvdb-Seq', '-')} {event['type']} {event.get('key')!r}"
    )
    sys.stdout.write(line + "\n")  # one write: the workers share the terminal
    sys.stdout.flush()


async def work(worker: int, args: argparse.Namespace) -> None:
    nc = await nats.connect(args.servers, name=f"kvdb consumer {worker}")
    js = nc.jetstream()
    stream = args.stream or f"KVDB_{args.node.replace('.', '_')}"
    subscription = await js.pull_subscribe(
        f"{args.prefix}.{args.node}.>", durable=args.durable, stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_ack_pending=10_000),
    )  # fmt: skip
    newest: dict[str, tuple[int, str]] = {}  # key -> the (hlc, origin) this worker applied
    idle = 0.0
    try:
        while args.idle_exit is None or idle < args.idle_exit:
            try:
                messages = await subscription.fetch(args.batch, timeout=1)
            except TimeoutError:  # nothing to fetch (nats-py raises asyncio's or its own)
                idle += 1
                continue
            idle = 0.0
            for msg in messages:
                event = orjson.loads(msg.data)
                headers = msg.headers or {}
                key = event.get("key")
                version = (int(event.get("hlc", 0)), event.get("origin", ""))
                if key is None or version > newest.get(key, (-1, "")):
                    if key is not None:
                        newest[key] = version
                    handle(worker, event, headers)
                    if args.work_ms:
                        await asyncio.sleep(args.work_ms / 1000)  # stands for real work
                await msg.ack()
    finally:
        await nc.close()


def run_worker(worker: int, args: argparse.Namespace) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    asyncio.run(work(worker, args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True, help="the kvdb node id whose events to consume")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--servers", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", help="default KVDB_<node>")
    parser.add_argument("--prefix", default="kvdb", help="the bridge's subject_prefix")
    parser.add_argument("--durable", default="kvdb-workers", help="the shared consumer's name")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--idle-exit", type=float, help="stop after this many idle seconds")
    parser.add_argument("--work-ms", type=float, default=0, help="pretend each event takes this")
    args = parser.parse_args(argv)
    workers = [
        multiprocessing.Process(target=run_worker, args=(index, args))
        for index in range(1, args.workers + 1)
    ]
    for process in workers:
        process.start()
    try:
        for process in workers:
            process.join()
    except KeyboardInterrupt:
        for process in workers:
            process.terminate()
    return max((p.exitcode or 0 for p in workers), default=0)


if __name__ == "__main__":
    sys.exit(main())
