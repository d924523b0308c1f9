"""A fast HTTP/1.1 keep-alive upstream: every request gets the same small JSON answer.

The sandbox servers are ``ThreadingHTTPServer`` (a thread per connection, ~2-4k req/s here); this
one is an asyncio protocol that answers far faster than either proxy, so the proxies are what is
measured. The body doubles as a HubSpot contact and as an empty contact-search result, so
``no_duplicate_contacts`` finds no duplicate and a create_contact passes.

Run alone: ``python -m benchmarks.upstream`` prints ``upstream listening on http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"id":"101","properties":{"email":"jane@acme.com"},"results":[],"total":0}'
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(BODY), BODY))


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17:line_end if line_end >= 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(RESPONSE)


async def serve(port: int = 0) -> None:
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port, backlog=1024)
    print(f"upstream listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
