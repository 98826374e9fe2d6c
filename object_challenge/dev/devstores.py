"""Local stand-ins for the stores: the mongoeco wire server and Debian's redis-server.

No MongoDB server is installable on these machines, so ``make run`` and the tests
run mongoeco's wire server (SQLite file, or memory for tests): real pymongo
clients talk to it over a socket. Point ``MONGO_URI`` / ``REDIS_URL`` at real
servers and none of this runs.

``python -m object_challenge.dev.devstores mongo --port P [--path FILE]`` serves Mongo.
"""

import argparse
import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=20.0, process=None, what="service"):
    """Block until 127.0.0.1:port accepts connections; raise with a hint if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s")


def start_redis(port, workdir, log, persist=False):
    """redis-server on 127.0.0.1:port; ``persist``: an append-only file in ``workdir``
    (fsync every second, as in production), else nothing is kept (tests' stores)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: run `make setup` (installs Debian's redis-server)")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if persist else "no",
            "--appendfsync",
            "everysec",
            "--dir",
            str(workdir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_mongo(port, path, log):
    """The mongoeco wire server; ``path`` None means the memory engine."""
    args = [sys.executable, "-m", "object_challenge.dev.devstores", "mongo", "--port", str(port)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        args += ["--path", str(path)]
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


async def _serve_mongo(port, path):
    # mongoeco is a development-only dependency (requirements/dev.txt): imported only when
    # the stand-in starts, so importing this module (tests, make run) does not need it
    from mongoeco.engines.memory import MemoryEngine  # noqa: PLC0415 -- see above
    from mongoeco.engines.sqlite import SQLiteEngine  # noqa: PLC0415 -- see above
    from mongoeco.wire import AsyncMongoEcoProxyServer  # noqa: PLC0415 -- see above

    from object_challenge.dev import mongoeco_changes, mongoeco_ids  # noqa: PLC0415 -- they import mongoeco

    mongoeco_ids.apply()
    mongoeco_changes.apply()
    engine = SQLiteEngine(path) if path else MemoryEngine()
    server = AsyncMongoEcoProxyServer(engine=engine, host="127.0.0.1", port=port)
    address = await server.start()
    print(f"mongoeco wire server on {address.uri} ({'sqlite ' + path if path else 'memory'})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="store", required=True)
    mongo = sub.add_parser("mongo", help="serve the Mongo wire protocol with mongoeco")
    mongo.add_argument("--port", type=int, required=True)
    mongo.add_argument("--path", default=None, help="SQLite file (default: memory engine)")
    args = parser.parse_args(argv)
    asyncio.run(_serve_mongo(args.port, args.path))


if __name__ == "__main__":
    main()
