"""A Hugging Face hub on 127.0.0.1 serving a few repositories from folders: enough of the API for
``HfApi.model_info(files_metadata=True)`` and ``snapshot_download`` (repository info, file metadata by HEAD,
file bodies by GET). It records the paths asked for. Nothing leaves the machine."""

from __future__ import annotations

import hashlib
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _handler(repos: dict[str, Path], seen: list[str]):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self._file(body=False)

        def do_GET(self):
            path = unquote(urlparse(self.path).path)
            seen.append(path)
            if path.startswith("/api/models/"):
                return self._info(path[len("/api/models/"):])
            self._file(body=True)

        def _info(self, rest: str):
            repo_id = next((r for r in repos if rest == r or rest.startswith(r + "/")), None)
            if repo_id is None:
                return self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
            files = sorted(p for p in repos[repo_id].rglob("*") if p.is_file())
            if "/tree/" in rest:  # the file listing snapshot_download asks for
                entries = [{"type": "file", "path": p.relative_to(repos[repo_id]).as_posix(), "size": p.stat().st_size,
                            "oid": _etag(p)} for p in files]
                return self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"})
            siblings = [{"rfilename": p.relative_to(repos[repo_id]).as_posix(), "size": p.stat().st_size,
                         "blobId": _etag(p)} for p in files]
            payload = {"id": repo_id, "modelId": repo_id, "sha": COMMIT, "siblings": siblings, "private": False,
                       "tags": [], "downloads": 0, "likes": 0}
            self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})

        def _file(self, body: bool):
            path = unquote(urlparse(self.path).path).lstrip("/")
            repo_id = next((r for r in repos if path.startswith(r + "/resolve/")), None)
            if repo_id is None:
                return self._send(404, b"", {"X-Error-Code": "RepoNotFound"}, body)
            name = path[len(repo_id) + len("/resolve/"):].split("/", 1)[1]
            file = repos[repo_id] / name
            if not file.is_file():
                return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, body)
            data = file.read_bytes()
            self._send(200, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{_etag(file)}"',
                                   "Content-Type": "application/octet-stream"}, body)

        def _send(self, status: int, data: bytes, headers: dict, body: bool = True):
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


def _etag(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@contextmanager
def serve_hub(repos: dict[str, Path]):
    """Yield (endpoint URL, the paths asked for)."""
    seen: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(repos, seen))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def put_in_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """Lay ``folder`` out as the hub client caches a download of ``repo_id`` (refs/main -> snapshot), as if
    ``python -m assistant download`` had fetched it: ``cache`` is ``$HF_HOME/hub``."""
    import shutil

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
