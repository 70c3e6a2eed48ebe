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

from llmsim.engine.timeline import DUE_EARLY, StepTimeline
from llmsim.server.connection import Send

Paced = asyncio.Future[tuple[int, bytes]]


class StreamFrames:
    """The frames of one choice still to be written, and where they stand: frame 0 is out;
    the one at ``last`` (or at ``stop``, a cut) is handed back through ``done``, not written."""

    __slots__ = ("done", "frames", "last", "position", "send", "stop")

    def __init__(self, send: Send, frames: Iterator[bytes], last: int, stop: int, done: Paced):
        self.send = send
        self.frames = frames
        self.last = last
        self.stop = stop
        self.done = done
        self.position = 0


class PacedStream(StreamFrames):
    """A stream whose frames go out on deadlines."""

    __slots__ = ("next_deadline", "pending")

    def __init__(
        self,
        send: Send,
        frames: Iterator[bytes],
        next_deadline: Callable[[], float],
        last: int,
        stop: int,
        done: Paced,
    ):
        super().__init__(send, frames, last, stop, done)
        self.next_deadline = next_deadline
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
        if send_now(stream.send(message).__await__(), self._next, stream, done):
            self._next(stream)

    def feed(
        self,
        send: Send,
        frames: Iterator[bytes],
        timeline: StepTimeline,
        last: int,
        stop: int,
    ) -> Paced:
        """Like ``pace``, but each frame goes out as soon as the batched engine has emitted
        its token (``timeline`` tells how many it has, and calls the feed's ``pump``)."""
        done: Paced = asyncio.get_running_loop().create_future()
        feed = StepFeed(send, frames, timeline, last, stop, done)
        timeline.listen(feed)
        feed.pump()
        return done


class StepFeed(StreamFrames):
    """A batched stream: each frame goes out in the burst of the engine step that emitted its
    token (or when a hold on it ends)."""

    __slots__ = ("timeline", "writing")

    def __init__(
        self,
        send: Send,
        frames: Iterator[bytes],
        timeline: StepTimeline,
        last: int,
        stop: int,
        done: Paced,
    ):
        super().__init__(send, frames, last, stop, done)
        self.timeline = timeline
        self.writing = False

    def pump(self) -> None:
        """Write every frame whose token is visible, until one must wait for the transport;
        the last frame (or the cut) is handed back instead."""
        done = self.done
        while not self.writing and not done.done():
            position = self.position + 1
            if self.timeline.visible <= position:
                return
            try:
                frame = next(self.frames)
            except Exception as error:
                done.set_exception(error)
                return
            self.position = position
            if position >= self.last or position >= self.stop:
                self._hand_back(position, frame)
                return
            message = {"type": "http.response.body", "body": frame, "more_body": True}
            self.writing = not send_now(
                self.send(message).__await__(), StepFeed._written, self, done
            )

    def _written(self) -> None:
        self.writing = False
        self.pump()

    def _hand_back(self, position: int, frame: bytes) -> None:
        self.timeline.detach()
        self.done.set_result((position, frame))


def send_now(
    write: Generator[Any, None, None], proceed: Callable[[Any], None], arg: object, done: Paced
) -> bool:
    """Run an ASGI send; True if it finished at once. If the transport pushes back, it is
    finished when the transport drains, and ``proceed(arg)`` is called then; a failure goes
    to ``done``."""
    try:
        waiting = write.send(None)
    except StopIteration:
        return True
    except Exception as error:
        done.set_exception(error)
        return False
    _resume_later(waiting, write, proceed, arg, done)
    return False


def _resume_later(
    waiting: object,
    write: Generator[Any, None, None],
    proceed: Callable[[Any], None],
    arg: object,
    done: Paced,
) -> None:
    def resume(_: object = None) -> None:
        if done.done():
            write.close()
        elif send_now(write, proceed, arg, done):
            proceed(arg)

    if isinstance(waiting, asyncio.Future):
        waiting.add_done_callback(resume)
    else:  # a bare yield: go on at the next turn of the loop
        asyncio.get_running_loop().call_soon(resume)
