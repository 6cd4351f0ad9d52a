"""A TCP proxy whose connections can be made to go silent: what the server sends stops reaching
the client, while the connection stays open (a broker connection that hangs, as seen from the
client). Connections opened afterwards pass."""

import asyncio
import contextlib


class SilencingProxy:
    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self._server: asyncio.Server | None = None
        self._silenced: set[asyncio.StreamWriter] = set()
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.listen_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    def silence(self) -> int:
        """From now on, drop what the server sends on every connection open now; how many."""
        self._silenced |= self._open
        return len(self._open)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._open.add(writer)
        to_server = asyncio.create_task(self._pipe(reader, upstream_writer, None))
        to_client = asyncio.create_task(self._pipe(upstream_reader, writer, writer))
        self._tasks |= {to_server, to_client}
        with contextlib.suppress(Exception):
            await asyncio.wait({to_server, to_client}, return_when=asyncio.FIRST_COMPLETED)
        for task in (to_server, to_client):
            task.cancel()
            self._tasks.discard(task)
        self._open.discard(writer)
        self._silenced.discard(writer)
        for w in (writer, upstream_writer):
            w.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter | None,
    ) -> None:
        while data := await reader.read(65536):
            if client is not None and client in self._silenced:
                continue
            writer.write(data)
            await writer.drain()
