"""The real MCP server behind the relay: a supervised child process over stdio.

The supervisor restarts a server that exits (at most ``MAX_RESTARTS`` within
``RESTART_WINDOW_S``) and replays the client's ``initialize`` request and
``notifications/initialized`` to the new process, so the client's session survives
(the server's own state does not: a restarted server starts empty). The replayed
``initialize`` (id :data:`REPLAY_ID`) is answered before ``notifications/initialized``
follows, as a client would wait: the TypeScript SDK's servers run their
``oninitialized`` hook before they have stored the client's capabilities when both
arrive together (the filesystem server then ignores the client's roots).
"""

import asyncio
import os
import time

#: Largest line accepted from the server (bytes): results of 10 MB and more pass.
LINE_LIMIT = 256 * 1024 * 1024
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
#: How long a message waits for a server that is being restarted (s).
RESTART_WAIT_S = 5.0
from drygate.relay.protocol import REPLAY_ID  # the id of the initialize replayed to a new process

_REPLAY_MARK = f'"{REPLAY_ID}"'.encode()
#: How long a replay waits for the answer to its ``initialize`` before it goes on (s).
REPLAY_ANSWER_S = 5.0


class Downstream:
    """One MCP server process. ``command``: argv list; ``env``: environment dict or None;
    ``cwd``: its working folder (None: the relay's).

    ``on_line(bytes)`` is awaited for every line the server writes; ``on_exit()`` when
    it exits (before a restart).
    """

    def __init__(self, command, env=None, on_line=None, on_exit=None, stderr=None, cwd=None):
        self.command = list(command)
        self.env = env
        self.cwd = cwd
        self.on_line = on_line
        self.on_exit = on_exit
        self.stderr = stderr
        self.proc = None
        self.restarts = []
        self.replay = []  # lines to send to a new process before anything else (initialize, initialized)
        self._reader = None
        self.closing = False
        self._write_lock = asyncio.Lock()
        self.ready = asyncio.Event()  # set while a process is running and has had its replay
        self.gone = False  # restarts exhausted: the server stays down
        self._replay_answered = None  # an Event while a replayed initialize awaits its answer

    async def start(self, replay=False):
        """Start the process; with ``replay``, send the saved handshake first.

        Raises OSError if the command cannot run."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=self.stderr, env=self.env, cwd=self.cwd, limit=LINE_LIMIT, start_new_session=True)
        self._reader = asyncio.ensure_future(self._read_loop(self.proc))
        if replay:
            for i, line in enumerate(self.replay):
                if i == 0 and _REPLAY_MARK in line:
                    self._replay_answered = asyncio.Event()
                    await self._send_now(line)
                    try:
                        await asyncio.wait_for(self._replay_answered.wait(), REPLAY_ANSWER_S)
                    except asyncio.TimeoutError:
                        pass  # a server that never answers gets the rest anyway
                    finally:
                        self._replay_answered = None
                    continue
                await self._send_now(line)
        self.ready.set()

    async def send(self, line, wait_s=RESTART_WAIT_S):
        """Write one line (bytes ending in a newline) to the server.

        While the server is being restarted the line waits (up to ``wait_s``) for the
        new process. Raises ConnectionError if the server is gone for good or the
        restart does not finish in time.
        """
        if not self.ready.is_set():
            if self.gone:
                raise ConnectionError("the MCP server exited too often and is not restarted")
            try:
                await asyncio.wait_for(self.ready.wait(), wait_s)
            except asyncio.TimeoutError:
                raise ConnectionError("the MCP server is being restarted and is not ready yet") from None
        await self._send_now(line)

    async def _send_now(self, line):
        proc = self.proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            raise ConnectionError("the MCP server is not running")
        async with self._write_lock:
            try:
                proc.stdin.write(line)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError) as e:
                raise ConnectionError(f"the MCP server closed its input ({e})") from e

    async def _read_loop(self, proc):
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError:  # a line over LINE_LIMIT: the stream is unusable
                    proc.kill()
                    break
                if not line:
                    break
                if self._replay_answered is not None and _REPLAY_MARK in line:
                    self._replay_answered.set()
                if self.on_line is not None:
                    await self.on_line(line)
        finally:
            self.ready.clear()
            await proc.wait()
            if not self.closing and proc is self.proc:
                if self.on_exit is not None:
                    await self.on_exit(proc.returncode)
                await self._restart()

    async def _restart(self):
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self.restarts) > MAX_RESTARTS:
            self.proc = None
            self.gone = True
            return
        await asyncio.sleep(min(0.05 * 2 ** (len(self.restarts) - 1), 2.0))
        try:
            await self.start(replay=True)
        except (OSError, ConnectionError):
            self.proc = None
            self.gone = True

    async def close(self):
        """Stop the server: close its input, then terminate it if it lingers."""
        self.closing = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.stdin.close()
        except (OSError, RuntimeError):
            pass
        try:
            await asyncio.wait_for(proc.wait(), 2.0)
        except asyncio.TimeoutError:
            try:
                os.killpg(proc.pid, 15)
            except OSError:
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except asyncio.TimeoutError:
                proc.kill()
