"""A local fake Anthropic Messages API that replays a scripted agent.

Used to drive the *real* Claude Code CLI offline (see conftest.py). Only the
stdlib is used so the module also runs as a script:

    python tests/e2e/fake_messages_api.py scenario.json   # prints the port

Scenario = a list of *turns*; each turn is one tool_use (``{"name":..,
"input":..}``) or a list of them (parallel tool calls in one assistant
message). ``input`` may be a callable: it gets the tool results the model has
seen so far (list of dicts, see ``tool_results``) and returns the input, as a
model bases a call on earlier results. Which turn to answer is decided by
counting the tool_result blocks in the conversation the CLI sends (the CLI
re-sends the whole conversation on every request), so the fake is stateless
with respect to the conversation.

Only the *main* conversation is scripted: a request that carries ``tools`` and
whose messages contain the trigger word. Everything else (warm-ups, title
generation, quota checks, requests without ``tools``) gets a short plain-text
answer, so it can never run a tool.

When every turn has been answered, the final assistant text embeds the text of
every tool_result the model received, so the CLI's ``result`` shows it too.
``FakeMessagesAPI.tool_results`` is a thread-safe, de-duplicated (by
tool_use_id), ordered record of what the model saw: ``{"tool_use_id",
"name", "content", "is_error"}``.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

TRIGGER = "DRYGATE_E2E"
FINAL_PREFIX = "DRYGATE_E2E_DONE"


def _text_of(content: Any) -> str:
    """Flatten a message / tool_result content (str or list of blocks) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                elif block.get("type") == "tool_result":
                    parts.append(_text_of(block.get("content")))
                elif "content" in block:
                    parts.append(_text_of(block.get("content")))
        return "\n".join(parts)
    if isinstance(content, dict):
        return _text_of([content])
    return str(content)


def _normalise_turns(steps: Iterable[Any]) -> list[list[dict]]:
    turns = []
    for step in steps:
        if isinstance(step, dict):
            turns.append([step])
        else:
            turns.append(list(step))
    return turns


class FakeMessagesAPI:
    """Threaded HTTP server on 127.0.0.1 (free port) speaking the Messages API."""

    def __init__(self, steps: Iterable[Any] = (), trigger: str = TRIGGER):
        self.turns = _normalise_turns(steps)
        self.trigger = trigger
        self._lock = threading.Lock()
        self._tool_results: list[dict] = []
        self._seen_result_ids: set[str] = set()
        self._tool_names: dict[str, str] = {}
        self.requests: list[dict] = []  # {"path", "scripted", "n_results", "answered"}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ server
    def start(self) -> "FakeMessagesAPI":
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _json(self, obj: Any, status: int = 200) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", "req_" + uuid.uuid4().hex[:20])
                self.end_headers()
                self.wfile.write(data)

            def do_HEAD(self):
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path.endswith("/v1/models"):
                    self._json({"data": [], "has_more": False, "first_id": None, "last_id": None})
                else:
                    self._json({})

            def do_POST(self):
                raw = self._body()
                path = self.path.split("?", 1)[0]
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                if path.endswith("/v1/messages/count_tokens"):
                    api._log({"path": self.path, "scripted": False})
                    self._json({"input_tokens": 42})
                    return
                if not path.endswith("/v1/messages"):
                    api._log({"path": self.path, "scripted": False})
                    self._json({})
                    return
                blocks, stop_reason = api._answer(body, self.path)
                model = body.get("model") or "claude-fake"
                if body.get("stream"):
                    self._stream(blocks, stop_reason, model)
                else:
                    self._json(
                        {
                            "id": "msg_" + uuid.uuid4().hex[:24],
                            "type": "message",
                            "role": "assistant",
                            "model": model,
                            "content": blocks,
                            "stop_reason": stop_reason,
                            "stop_sequence": None,
                            "usage": {"input_tokens": 10, "output_tokens": 10},
                        }
                    )

            def _stream(self, blocks, stop_reason, model):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.send_header("request-id", "req_" + uuid.uuid4().hex[:20])
                self.end_headers()
                self.close_connection = True

                def ev(kind: str, data: dict) -> None:
                    self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())

                ev(
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": "msg_" + uuid.uuid4().hex[:24],
                            "type": "message",
                            "role": "assistant",
                            "model": model,
                            "content": [],
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": {"input_tokens": 10, "output_tokens": 1},
                        },
                    },
                )
                for i, block in enumerate(blocks):
                    if block["type"] == "text":
                        ev(
                            "content_block_start",
                            {"type": "content_block_start", "index": i,
                             "content_block": {"type": "text", "text": ""}},
                        )
                        ev(
                            "content_block_delta",
                            {"type": "content_block_delta", "index": i,
                             "delta": {"type": "text_delta", "text": block["text"]}},
                        )
                    else:
                        ev(
                            "content_block_start",
                            {"type": "content_block_start", "index": i,
                             "content_block": {"type": "tool_use", "id": block["id"],
                                               "name": block["name"], "input": {}}},
                        )
                        ev(
                            "content_block_delta",
                            {"type": "content_block_delta", "index": i,
                             "delta": {"type": "input_json_delta",
                                       "partial_json": json.dumps(block["input"])}},
                        )
                    ev("content_block_stop", {"type": "content_block_stop", "index": i})
                ev(
                    "message_delta",
                    {"type": "message_delta",
                     "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                     "usage": {"output_tokens": 10}},
                )
                ev("message_stop", {"type": "message_stop"})
                self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --------------------------------------------------------------- records
    def _log(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)

    @property
    def tool_results(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._tool_results]

    @property
    def scripted_requests(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self.requests if r.get("scripted")]

    def results_text(self) -> str:
        return "\n".join(r["content"] for r in self.tool_results)

    # ----------------------------------------------------------------- logic
    def _is_main(self, body: dict) -> bool:
        if not body.get("tools"):
            return False
        for msg in body.get("messages") or []:
            if msg.get("role") in ("user", "system") and self.trigger in _text_of(msg.get("content")):
                return True
        return False

    def _collect_results(self, body: dict) -> list[dict]:
        """All tool_result blocks of the conversation, in order, recording new ones."""
        found = []
        for msg in body.get("messages") or []:
            if msg.get("role") == "assistant" and isinstance(msg.get("content"), list):
                for block in msg["content"]:
                    if isinstance(block, dict) and block.get("type") == "tool_use":
                        with self._lock:
                            self._tool_names.setdefault(block.get("id"), block.get("name"))
            if msg.get("role") != "user" or not isinstance(msg.get("content"), list):
                continue
            for block in msg["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    found.append(block)
        with self._lock:
            for block in found:
                tid = block.get("tool_use_id")
                if tid in self._seen_result_ids:
                    continue
                self._seen_result_ids.add(tid)
                self._tool_results.append(
                    {
                        "tool_use_id": tid,
                        "name": self._tool_names.get(tid),
                        "content": _text_of(block.get("content")),
                        "is_error": bool(block.get("is_error", False)),
                    }
                )
        return found

    def _input(self, call: dict) -> dict:
        """A call's input; a callable ``input`` is called with the tool results seen so far
        (what a model would base its next call on, e.g. an id or a reference token)."""
        value = call.get("input", {})
        return value(self.tool_results) if callable(value) else value

    def _answer(self, body: dict, path: str) -> tuple[list[dict], str]:
        if not self._is_main(body):
            self._log({"path": path, "scripted": False})
            return [{"type": "text", "text": "ok"}], "end_turn"
        results = self._collect_results(body)
        n = len(results)
        done = 0
        for turn_index, turn in enumerate(self.turns):
            if n < done + len(turn):
                if n != done:
                    # Part of a parallel turn came back without the rest: wait for it.
                    break
                blocks = [
                    {"type": "tool_use", "id": f"toolu_e2e_{turn_index:03d}_{j:02d}_{uuid.uuid4().hex[:8]}",
                     "name": call["name"], "input": self._input(call)}
                    for j, call in enumerate(turn)
                ]
                self._log({"path": path, "scripted": True, "n_results": n, "answered": f"turn {turn_index}"})
                return blocks, "tool_use"
            done += len(turn)
        seen = self.tool_results
        lines = [FINAL_PREFIX]
        for i, r in enumerate(seen):
            flag = " (is_error)" if r["is_error"] else ""
            lines.append(f"[{i}] {r['name']}{flag}: {r['content']}")
        self._log({"path": path, "scripted": True, "n_results": n, "answered": "final"})
        return [{"type": "text", "text": "\n".join(lines)}], "end_turn"


if __name__ == "__main__":  # pragma: no cover - manual use
    steps = json.load(open(sys.argv[1])) if len(sys.argv) > 1 else []
    api = FakeMessagesAPI(steps).start()
    print(api.port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()
