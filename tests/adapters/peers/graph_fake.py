"""A stand-in of the Instagram Graph API content-publishing endpoints under `/v21.0`.

`POST /{user}/media` → container id; `GET /{container}?fields=status_code` walks through `statuses` (the last
one repeats); `POST /{user}/media_publish` → media id. Errors use Graph's `{"error": {...}}` shape.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Dict, List

from tests.adapters.peers.httpd import Reply, Request

ACCESS_TOKEN = "IGQVJfakeGraphAccessToken0123456789abcdef"
USER_ID = "17841400000000001"
VERSION = "/v21.0"


def graph_error(message: str, code: int, status: int = 400, transient: bool = False) -> Reply:
    return Reply.json(
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "is_transient": transient,
                "fbtrace_id": "Afake",
            }
        },
        status=status,
    )


@dataclass
class Container:
    image_url: str
    caption: str
    statuses: List[str]
    polls: int = 0
    published: bool = False


@dataclass
class FakeGraph:
    token: str = ACCESS_TOKEN
    user_id: str = USER_ID
    statuses: List[str] = field(default_factory=lambda: ["IN_PROGRESS", "FINISHED"])
    containers: Dict[str, Container] = field(default_factory=dict)
    published: List[str] = field(default_factory=list)  # container ids, in publish order

    def __post_init__(self) -> None:
        self._ids = itertools.count(9000)
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return graph_error("Invalid OAuth access token.", 190)
        if not request.path.startswith(VERSION + "/"):
            return graph_error("Unknown path components", 2500)
        parts = request.path[len(VERSION) + 1 :].split("/")
        with self._lock:
            if request.method == "POST" and parts == [self.user_id, "media"]:
                form = request.form()
                if not form.get("image_url"):
                    return graph_error("The parameter image_url is required", 100)
                container_id = str(next(self._ids))
                self.containers[container_id] = Container(
                    form["image_url"], form.get("caption", ""), list(self.statuses)
                )
                return Reply.json({"id": container_id})
            if request.method == "GET" and len(parts) == 1 and parts[0] in self.containers:
                container = self.containers[parts[0]]
                status = container.statuses[min(container.polls, len(container.statuses) - 1)]
                container.polls += 1
                return Reply.json({"status_code": status, "id": parts[0]})
            if request.method == "POST" and parts == [self.user_id, "media_publish"]:
                container = self.containers.get(request.form().get("creation_id", ""))
                if container is None or container.statuses[-1] != "FINISHED" or container.published:
                    return graph_error("The media is not ready for publishing", 9007)
                container.published = True
                self.published.append(request.form()["creation_id"])
                return Reply.json({"id": f"1790{len(self.published):012d}"})
        return graph_error("Unsupported request", 100)
