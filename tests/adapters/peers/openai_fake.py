"""A stand-in of OpenAI's `POST /v1/chat/completions`, answering in the real response shape.

It tells the three kinds of request apart the way the adapter sends them: an `image_url` part → vision
analysis; `response_format` json_object without an image → caption (+ SD caption) JSON; otherwise → plain
caption text. `script` lets a test queue the exact message contents the next calls get.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional

from tests.adapters.peers.httpd import Reply, Request

API_KEY = "sk-test-fakekey-1234567890abcdefABCDEF"

ANALYSIS = {
    "description": "A red square on a quiet background.",
    "mood": "calm",
    "tags": ["Red", "square", "minimal"],
    "nsfw": False,
    "safety_labels": [],
    "subject": "a square",
    "style": "minimalism",
    "lighting": "flat",
    "camera": None,
    "clothing_or_accessories": None,
    "aesthetic_terms": ["clean", "geometric"],
    "pose": None,
    "composition": "centered",
    "background": "plain",
    "color_palette": ["red", "white"],
}
CAPTION = "Quiet geometry in red"
SD_CAPTION = "a red square, flat lighting, centered composition, minimalism"


def kind_of(body: Dict[str, Any]) -> str:
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") == "image_url" for part in content):
            return "vision"
    if (body.get("response_format") or {}).get("type") == "json_object":
        return "json_caption"
    return "caption"


def completion(content: Optional[str], model: str, finish_reason: str = "stop") -> Dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


class FakeOpenAI:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.calls: List[Dict[str, Any]] = []  # request bodies of accepted calls, in order
        self.script: Deque[str] = deque()  # message contents for the next calls, before the defaults
        self._lock = threading.Lock()

    def kinds(self) -> List[str]:
        return [kind_of(call) for call in self.calls]

    def __call__(self, request: Request) -> Reply:
        if request.path != "/v1/chat/completions":
            return Reply.json(
                {"error": {"message": "Unknown route", "type": "invalid_request_error"}}, status=404
            )
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply.json(
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        body = request.json()
        with self._lock:
            self.calls.append(body)
            scripted = self.script.popleft() if self.script else None
        model = body["model"] + "-2024-fake"
        if scripted is not None:
            return Reply.json(completion(scripted, model))
        kind = kind_of(body)
        if kind == "vision":
            return Reply.json(completion(json.dumps(ANALYSIS), model))
        if kind == "json_caption":
            return Reply.json(completion(json.dumps({"caption": CAPTION, "sd_caption": SD_CAPTION}), model))
        return Reply.json(completion(CAPTION, model))
