"""Parse files in a separate process with a memory ceiling and a time limit, so a decompression bomb, a
hostile PDF or a parser bug costs one file an error, never the application.

Threads share workers safely: a ``ParseWorker`` serves one request at a time (a lock) and every reply
carries its request's id, so one thread can never receive another's result; a ``ParsePool`` keeps a few
workers, so a chat's OCR does not wait behind a long PDF being ingested.
"""

from __future__ import annotations

import collections
import itertools
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from retrieval.errors import RetrievalError, UnreadableFileError, detail, named
from retrieval.loaders import ParseOptions, Parsed, parse

DEFAULT_TIMEOUT = 120.0
DEFAULT_MEMORY = 4 * 2**30


def _no_network(event: str, args: tuple) -> None:
    """A parser has no reason to reach the network, in any mode: a document that makes a library fetch
    something (an external reference, a remote image) is refused here, by the process's audit hook."""
    if event in ("socket.connect", "socket.sendto") and getattr(args[0], "family", None) != socket.AF_UNIX:
        raise PermissionError("the parse worker does not connect to the network")
    if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr") and args[0] is not None:
        raise PermissionError("the parse worker does not look up network names")


# The worker is a fresh interpreter that imports this module and nothing of the application: started the
# way multiprocessing's spawn starts a process, it would import the parent's main script again, and a
# script that builds the app when imported (``app.py``, a Space's entry point) was built again in each
# worker, its models included, before the worker's memory ceiling was set (OCR then failed in it: bad_alloc).
_BOOT = ("import sys; sys.argv[3] in sys.path or sys.path.insert(0, sys.argv[3]); "
         "from retrieval.worker import _main; _main()")
_ROOT = str(Path(__file__).resolve().parents[1])  # the folder that holds the ``retrieval`` package


def _main() -> None:
    """The worker process: ``python -P -c _BOOT FD MEMORY_BYTES ROOT``; it serves the connection on FD."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is the parent's to handle
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))


def _serve(conn, memory_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    sys.addaudithook(_no_network)
    try:
        _answer(conn, memory_bytes)
    except (EOFError, OSError):  # the application closed the connection or exited: nothing to answer
        return


def _answer(conn, memory_bytes: int) -> None:
    while True:
        job = conn.recv()
        if job is None:
            return
        request, kind, payload, options, name = job
        try:
            if kind == "parse":
                conn.send((request, "ok", parse(Path(payload), options)))
            else:
                from retrieval.ocr import read_layout

                # a document's scanned pages (read with their layout) on one thread: they are read while the
                # file before is embedded, where a second thread only takes turns with the embedder's two
                # (ingest 52-55% of the embedder's rate against 36-41%, benchmarks/retrieval.py); a query
                # image, which someone waits for, on one a core (0.63 s against 1.0 s for a line of text)
                read = [read_layout(image, threads=1 if options == "layout" else 0) for image in payload]
                conn.send((request, "ok", read if options == "layout" else [text for text, _ in read]))
        except RetrievalError as exc:
            conn.send((request, "error", type(exc).__name__, str(exc)))
        except Exception as exc:  # noqa: BLE001  a parser bug on one file must not stop the batch
            conn.send((request, "error", "UnreadableFileError", failure(exc, name, memory_bytes)))


def failure(exc: Exception, name: str, memory_bytes: int) -> str:
    """What the user is told of a file the worker failed on (not a RetrievalError, which says it itself)."""
    if isinstance(exc, MemoryError) or "bad_alloc" in str(exc):  # Python's, or a C++ library's (onnxruntime)
        return named(name, f"reading it needed more memory than the {memory_bytes / 2**30:.0f} GiB allowed")
    return named(name, f"could not be read ({type(exc).__name__}: {detail(exc, name)})")


class ParseWorker:
    """One long-lived worker process; restarted after a crash or a time-out."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, memory_bytes: int = DEFAULT_MEMORY):
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self._process = None
        self._conn = None
        self._lock = threading.Lock()  # one request in flight per worker
        self._requests = itertools.count(1)

    def parse(self, path: Path, options: ParseOptions = ParseOptions()) -> Parsed:
        return self._call("parse", str(path), options, path.name)

    def ocr(self, images: list, name: str, *, layout: bool = False) -> list:
        """The text in each image, read in the worker (the OCR models stay loaded there); with ``layout``,
        (text, Layout) pairs: where its lines are too."""
        return self._call("ocr", images, "layout" if layout else None, name) if images else []

    def _call(self, kind: str, payload, options, name: str):
        with self._lock:
            request = next(self._requests)
            reply = self._exchange((request, kind, payload, options, name), name, kind)
        if reply[0] != request:  # cannot happen under the lock; if it ever does, never hand it on
            raise RetrievalError(named(name, "the parser answered another request; please try again"))
        if reply[1] == "ok":
            return reply[2]
        from retrieval import errors

        raise getattr(errors, reply[2], UnreadableFileError)(reply[3])

    def _exchange(self, job: tuple, name: str, kind: str) -> tuple:
        self._ensure()
        self._conn.send(job)
        if not self._conn.poll(self.timeout):
            self._kill()
            what = "reading it" if kind == "parse" else "reading the text in its images"
            raise UnreadableFileError(named(name, f"{what} took longer than {self.timeout:.0f} s and was stopped"))
        try:
            return self._conn.recv()
        except (EOFError, ConnectionError, OSError):
            self._kill()
            raise UnreadableFileError(named(name, "the parser stopped on this file (out of memory, or a "
                                            "damaged file)")) from None

    def close(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                try:
                    self._conn.send(None)
                    self._process.wait(2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._kill()

    def _ensure(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._kill()
        parent, child = socket.socketpair()
        try:
            # -P: the folder it starts in is not searched first (a stray numpy/ there would shadow numpy);
            # its own process group: a terminal's Ctrl-C is the app's to handle, even while the worker starts
            self._process = subprocess.Popen(
                [sys.executable, "-P", "-c", _BOOT, str(child.fileno()), str(self.memory_bytes), _ROOT],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, process_group=0)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self._conn = Connection(parent.detach())

    def _kill(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:  # unkillable for now (stuck in the kernel): let it go
                pass
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None


class ParsePool:
    """Several ``ParseWorker`` processes; each request takes the idle one used last (started on first use),
    so files read one after another keep one warm worker (its libraries and OCR models loaded) and a second
    starts only when two requests meet (a chat's OCR during an ingest).

    Requests that wait are served in the order they came: a scan's pages take every worker in turn, and a
    chat's query image waits for one page, not for the scan (a thread that hands a worker back and asks again
    at once would otherwise get it before a thread that has waited, which wakes later)."""

    def __init__(self, size: int = 2, **worker_options):
        self.workers = [ParseWorker(**worker_options) for _ in range(max(size, 1))]
        self.lanes = len(self.workers)  # requests it serves at once (a scan's pages are read that many at once)
        self._idle = list(reversed(self.workers))  # the last one handed back at the end
        self._queue: collections.deque = collections.deque()  # the requests waiting, in order
        self._turn = threading.Condition()
        self._closed = False

    def parse(self, path: Path, options: ParseOptions = ParseOptions()) -> Parsed:
        return self._with_worker(lambda w: w.parse(path, options))

    def ocr(self, images: list, name: str, *, layout: bool = False) -> list:
        return self._with_worker(lambda w: w.ocr(images, name, layout=layout)) if images else []

    def _with_worker(self, call):
        ticket = object()
        with self._turn:
            self._queue.append(ticket)
            try:
                self._turn.wait_for(lambda: self._closed or (self._idle and self._queue[0] is ticket))
            finally:
                self._queue.remove(ticket)
                self._turn.notify_all()  # the next in line may take another idle worker
            if self._closed:  # the app is stopping: no worker is started again for what was still queued
                raise RetrievalError("The parser has been closed (the app is shutting down).")
            worker = self._idle.pop()
        try:
            return call(worker)
        finally:
            with self._turn:
                self._idle.append(worker)
                self._turn.notify_all()

    def close(self) -> None:
        with self._turn:
            self._closed = True
            self._turn.notify_all()
        for worker in self.workers:
            worker.close()


class InProcessParser:
    """The same interface without a process: for tests of the store that need no isolation."""

    def parse(self, path: Path, options: ParseOptions = ParseOptions()) -> Parsed:
        return parse(path, options)

    def ocr(self, images: list, name: str, *, layout: bool = False) -> list:
        from retrieval.ocr import read_layout

        read = [read_layout(image) for image in images]
        return read if layout else [text for text, _ in read]

    def close(self) -> None:
        pass
