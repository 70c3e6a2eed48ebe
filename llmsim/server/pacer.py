"""One timer for the tokens of every stream, instead of a sleep per token per stream.

A streamed choice writes its first frame itself, then hands the rest to the pacer and waits for
it. The pacer keeps a heap of (deadline, stream) entries and one event-loop timer set to the
earliest deadline; when the timer fires it writes every due frame, draws each stream's next
deadline and pushes the stream back. A token then costs a heap push and the ASGI ``send``; a
per-token ``asyncio.sleep`` costs a future, a timer handle and a task step on top. Deadlines
stay per stream and exact (no tick to snap to), chained from the previous deadline.

The ASGI ``send`` of a stream's body is a coroutine that finishes at once unless the transport
pushes back (a client reading slower than tokens come); then the pacer finishes that write
when the transport drains, and the stream's next frame follows it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from llmsim.server.connection import Send

DUE_EARLY = 0.0005
"""How early a frame may go out: half the timer resolution (uvloop rounds delays to whole
milliseconds, so a lone sleep is just as early or late)."""

Paced = asyncio.Future[tuple[int, bytes]]


class PacedStream:
    """The frames of one choice still to be written, and where they stand."""

    __slots__ = ("done", "frames", "last", "next_deadline", "pending", "position", "send", "stop")

    def __init__(
        self,
        send: Send,
        frames: Iterator[bytes],
        next_deadline: Callable[[], float],
        last: int,
        stop: int,
        done: Paced,
    ):
        self.send = send
        self.frames = frames
        self.next_deadline = next_deadline
        self.last = last
        self.stop = stop
        self.done = done
        self.position = 0
        self.pending = b""


class TokenPacer:
    """Writes the due frames of every paced stream from one event-loop timer."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._heap: list[tuple[float, int, PacedStream]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._armed_for = float("inf")
        self._firing = False

    def __len__(self) -> int:
        """Streams waiting for their next frame's deadline."""
        return len(self._heap)

    def pace(
        self,
        send: Send,
        frames: Iterator[bytes],
        next_deadline: Callable[[], float],
        last: int,
        stop: int,
    ) -> Paced:
        """Write ``frames`` (frame 1 onwards; frame 0 is out) each at the deadline
        ``next_deadline`` draws for it. The future gives ``(position, frame)``: the frame held
        at ``last`` once its deadline has come, or, with ``stop`` < ``last``, the frame that
        would have gone out as number ``stop`` (not written: the caller cuts there)."""
        done: Paced = asyncio.get_running_loop().create_future()
        stream = PacedStream(send, frames, next_deadline, last, stop, done)
        self._next(stream)
        return done

    def _next(self, stream: PacedStream) -> None:
        """Advance the stream to its next frame and queue it for that frame's deadline."""
        try:
            stream.pending = next(stream.frames)
            deadline = stream.next_deadline()
        except Exception as error:
            stream.done.set_exception(error)
            return
        stream.position += 1
        heapq.heappush(self._heap, (deadline, next(self._order), stream))
        if not self._firing and deadline < self._armed_for:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._armed_for = float("inf")
        if self._heap:
            due = self._heap[0][0]
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(due - self._clock(), 0.0), self._fire)
            self._armed_for = due

    def _fire(self) -> None:
        self._timer = None
        self._armed_for = float("inf")
        self._firing = True
        heap = self._heap
        try:
            now = self._clock() + DUE_EARLY
            while heap and heap[0][0] <= now:
                self._write(heapq.heappop(heap)[2])
        finally:
            self._firing = False
            self._arm()

    def _write(self, stream: PacedStream) -> None:
        """The stream's frame is due: hand it back if it is the last (or the cut), else send
        it and queue the next one."""
        done = stream.done
        if done.done():  # the request was cancelled while it waited
            return
        position = stream.position
        if position >= stream.last or position >= stream.stop:
            done.set_result((position, stream.pending))
            return
        message = {"type": "http.response.body", "body": stream.pending, "more_body": True}
        self._drive(stream, stream.send(message).__await__())

    def _drive(self, stream: PacedStream, write: Generator[Any, None, None]) -> None:
        """Run the send; if the transport pushes back, finish it when it drains."""
        try:
            waiting = write.send(None)
        except StopIteration:
            self._next(stream)
            return
        except Exception as error:
            stream.done.set_exception(error)
            return
        if isinstance(waiting, asyncio.Future):
            waiting.add_done_callback(lambda _: self._resume(stream, write))
        else:  # a bare yield: go on at the next turn of the loop
            asyncio.get_running_loop().call_soon(self._resume, stream, write)

    def _resume(self, stream: PacedStream, write: Generator[Any, None, None]) -> None:
        if stream.done.done():
            write.close()
            return
        self._drive(stream, write)
