"""Parse files in a separate process with a memory ceiling and a time limit, so a decompression bomb, a
hostile PDF or a parser bug costs one file an error, never the application."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from retrieval.errors import RetrievalError, UnreadableFileError
from retrieval.loaders import ParseOptions, Parsed, parse

DEFAULT_TIMEOUT = 120.0
DEFAULT_MEMORY = 4 * 2**30


def _serve(conn, memory_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        kind, payload, options = job
        path = payload if kind == "parse" else "image"
        try:
            if kind == "parse":
                conn.send(("ok", parse(Path(payload), options)))
            else:
                from retrieval.ocr import read_text

                conn.send(("ok", [read_text(image) for image in payload]))
        except RetrievalError as exc:
            conn.send(("error", type(exc).__name__, str(exc)))
        except MemoryError:
            conn.send(("error", "UnreadableFileError", f"{Path(path).name}: parsing needed more memory "
                       f"than the {memory_bytes / 2**30:.0f} GiB allowed"))
        except Exception as exc:  # noqa: BLE001  a parser bug on one file must not stop the batch
            conn.send(("error", "UnreadableFileError", f"{Path(path).name}: could not be parsed "
                       f"({type(exc).__name__}: {exc})"))


class ParseWorker:
    """One long-lived worker process; restarted after a crash or a time-out."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, memory_bytes: int = DEFAULT_MEMORY):
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self._process = None
        self._conn = None

    def parse(self, path: Path, options: ParseOptions = ParseOptions()) -> Parsed:
        return self._call("parse", str(path), options, path.name)

    def ocr(self, images: list, name: str) -> list[str]:
        """The text in each image, read in the worker (the OCR models stay loaded there)."""
        return self._call("ocr", images, None, name) if images else []

    def _call(self, kind: str, payload, options, name: str):
        self._ensure()
        self._conn.send((kind, payload, options))
        if not self._conn.poll(self.timeout):
            self._kill()
            raise UnreadableFileError(f"{name}: {kind} took longer than {self.timeout:.0f} s and was stopped")
        try:
            reply = self._conn.recv()
        except (EOFError, ConnectionError, OSError):
            self._kill()
            raise UnreadableFileError(f"{name}: the parser crashed on this file (out of memory or a "
                                      "corrupt file)") from None
        if reply[0] == "ok":
            return reply[1]
        from retrieval import errors

        raise getattr(errors, reply[1], UnreadableFileError)(reply[2])

    def close(self) -> None:
        if self._process is not None and self._process.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._process.join(2)
        self._kill()

    def _ensure(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, self.memory_bytes), daemon=True,
                                    name="parse-worker")
        self._process.start()
        child.close()
        self._conn = parent

    def _kill(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
        self._process, self._conn = None, None


class InProcessParser:
    """The same interface without a process: for tests of the store that need no isolation."""

    def parse(self, path: Path, options: ParseOptions = ParseOptions()) -> Parsed:
        return parse(path, options)

    def ocr(self, images: list, name: str) -> list[str]:
        from retrieval.ocr import read_text

        return [read_text(image) for image in images]

    def close(self) -> None:
        pass
