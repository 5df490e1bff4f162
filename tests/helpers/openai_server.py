"""A small server on 127.0.0.1 that speaks the OpenAI chat-completions streaming protocol, for the
endpoint backend's tests. It answers deterministically from the request and records what it got."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder:
    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.answer: str | None = None  # when set, the answer streamed (in words), whatever was asked
        self.requests: list[dict] = []
        self.disconnected = threading.Event()


def _handler(recorder: Recorder):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            recorder.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if recorder.api_key and self.headers.get("Authorization") != f"Bearer {recorder.api_key}":
                return self._json(401, {"error": {"message": "invalid api key"}})
            if body["model"] == "missing":
                return self._json(404, {"error": {"message": "model 'missing' not found"}})
            last = body["messages"][-1]["content"][-1]["text"]
            if "boom" in last:
                return self._json(500, {"error": {"message": "CUDA out of memory"}})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            images = sum(p["type"] == "image_url" for m in body["messages"] for p in m["content"])
            words = [f"I see {images} image(s) in {len(body['messages'])} messages."]
            words += [f" w{i}" for i in range(body["max_tokens"] - 1)]
            if recorder.answer is not None:
                words = recorder.answer.split(" ")
                words = [w + " " for w in words[:-1]] + words[-1:]
            try:
                for word in words:
                    event = {"choices": [{"index": 0, "delta": {"content": word}}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                    if len(words) > 1000:
                        time.sleep(0.002)
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                recorder.disconnected.set()

        def _json(self, status: int, payload: dict):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def serve_openai(api_key: str | None = None):
    recorder = Recorder(api_key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", recorder
    finally:
        server.shutdown()
        server.server_close()
