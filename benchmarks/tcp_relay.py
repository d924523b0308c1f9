"""The floor of a Python proxy: a plain asyncio TCP relay (streams, as the Enact listener uses them).

    python -m benchmarks.tcp_relay UPSTREAM_HOST:PORT      # prints "relay listening on tcp://HOST:PORT"

Bytes are copied both ways as they come, nothing is parsed: what any asyncio relay on this machine
costs per round trip (two reads, two writes, two wakeups) before it inspects anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

READ_SIZE = 256 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def main(upstream: str) -> None:
    host, port = upstream.rsplit(":", 1)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    bound = server.sockets[0].getsockname()
    print(f"relay listening on tcp://{bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1]))
