"""The pipe between the writer and its process: a 4-byte big-endian length, then a pickle.

The pipe is private to the two processes, so unpickling what comes through it is safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import struct
import time
from typing import IO, Any

LENGTH = struct.Struct(">I")

PIPE_BYTES = 1 << 20
"""The batch pipe's buffer on Linux (the default is 64 KiB, and an unprivileged process may ask
for up to /proc/sys/fs/pipe-max-size, 1 MiB by default)."""


def widen(pipe: Any) -> None:
    """A batch of 16 completed webhooks is some 70 KB: with 64 KiB of pipe the parent wrote it
    in two calls with a wait for the child in between, and the child read it in two.
    https://man7.org/linux/man-pages/man7/pipe.7.html (F_SETPIPE_SZ)"""
    size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if size is None or pipe is None:
        return
    with contextlib.suppress(OSError):  # over the user's pipe quota: the default still works
        fcntl.fcntl(pipe.fileno(), size, PIPE_BYTES)


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return LENGTH.pack(len(data)) + data


def send(stream: IO[bytes], message: Any) -> None:
    stream.write(frame(message))
    stream.flush()


class Frames:
    """The child's end of the pipe: whole frames, those already sent read without waiting."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False

    def _read(self) -> None:
        data = os.read(self.fd, 1 << 20)
        if data:
            self.buffer += data
        else:
            self.eof = True

    def _take(self, limit: int) -> list[bytes]:
        frames: list[bytes] = []
        at = 0
        while len(frames) < limit and len(self.buffer) - at >= LENGTH.size:
            size = LENGTH.unpack_from(self.buffer, at)[0]
            if len(self.buffer) - at - LENGTH.size < size:
                break
            frames.append(bytes(self.buffer[at + LENGTH.size : at + LENGTH.size + size]))
            at += LENGTH.size + size
        del self.buffer[:at]
        return frames

    def one(self) -> Any:
        """The next frame's message; EOFError once the parent closed the pipe."""
        while True:
            frames = self._take(1)
            if frames:
                return pickle.loads(frames[0])  # noqa: S301 - our own two processes' pipe
            if self.eof:
                raise EOFError
            self._read()

    def waiting(self, limit: int, timeout: float | None = None) -> list[Any] | None:
        """At least one message (waits for it), plus every whole one already in the pipe, at
        most `limit`; [] once the parent closed the pipe and nothing is left; None when
        `timeout` seconds passed first."""
        began = time.monotonic()
        while True:
            frames = self._take(limit)
            if frames:
                while not self.eof and select.select([self.fd], [], [], 0)[0]:
                    self._read()
                frames += self._take(limit - len(frames))
                return [pickle.loads(f) for f in frames]  # noqa: S301 - as above
            if self.eof:
                return []
            if timeout is not None:
                left = max(0.0, began + timeout - time.monotonic())
                if not select.select([self.fd], [], [], left)[0]:  # 0: a look, no wait
                    return None
            self._read()

    def ready(self, limit: int) -> list[Any]:
        """The whole messages already in the pipe, at most `limit`, without waiting."""
        while not self.eof and select.select([self.fd], [], [], 0)[0]:
            self._read()
        return [pickle.loads(f) for f in self._take(limit)]  # noqa: S301 - as above
