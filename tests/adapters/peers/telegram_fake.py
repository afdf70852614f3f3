"""A stand-in of the Telegram Bot API: `getMe` and `sendPhoto` (multipart), at `/bot<token>/<method>`."""

from __future__ import annotations

import email.parser
import email.policy
import io
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

from PIL import Image

from tests.adapters.peers.httpd import Reply, Request

BOT_TOKEN = "123456789:AAFakeTelegramTokenForTests_abcdefghij"
CHANNEL_ID = "-1001234567890"


@dataclass
class SentPhoto:
    chat_id: str
    caption: Optional[str]
    photo: bytes

    @property
    def size(self) -> tuple:
        with Image.open(io.BytesIO(self.photo)) as image:
            return image.size


def parse_multipart(content_type: str, body: bytes) -> Dict[str, bytes]:
    """Form fields of a multipart/form-data body, by name (files as their bytes)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[str(name)] = part.get_payload(decode=True) or b""
    return fields


def error(code: int, description: str, **parameters: int) -> Reply:
    body = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Reply.json(body, status=code)


class FakeTelegram:
    def __init__(self, token: str = BOT_TOKEN) -> None:
        self.token = token
        self.sent: List[SentPhoto] = []
        self._ids = itertools.count(100)
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        prefix = f"/bot{self.token}/"
        if not request.path.startswith(prefix):
            return error(401, "Unauthorized")
        method = request.path[len(prefix) :]
        if method == "getMe":
            return Reply.json(
                {
                    "ok": True,
                    "result": {"id": 123456789, "is_bot": True, "first_name": "Fake", "username": "fake_bot"},
                }
            )
        if method != "sendPhoto":
            return error(404, "Not Found")
        fields = parse_multipart(request.headers["content-type"], request.body)
        chat_id = str(fields.get("chat_id", b""), "utf-8")
        if not chat_id:
            return error(400, "Bad Request: chat_id is empty")
        caption = str(fields["caption"], "utf-8") if "caption" in fields else None
        with self._lock:
            self.sent.append(SentPhoto(chat_id, caption, fields.get("photo", b"")))
            message_id = next(self._ids)
        return Reply.json(
            {
                "ok": True,
                "result": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": int(chat_id), "type": "channel", "title": "Fake channel"},
                    "caption": caption,
                    "photo": [
                        {
                            "file_id": "f1",
                            "file_unique_id": "u1",
                            "width": 90,
                            "height": 90,
                            "file_size": 1000,
                        }
                    ],
                },
            }
        )
