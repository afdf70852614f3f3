"""Where the uvicorn log configuration shipped in the package lives, for `uvicorn --log-config`.

uvicorn's supervisor (`--workers N`, `--reload`) prints its own lines (`Uvicorn running on …`, `Started parent
process …`) before any worker imports the app, so only a log configuration given to uvicorn itself turns them into
our events. `python -m publisher_v2.web.log_config` prints the file's path (inside an installed package too).
"""

from __future__ import annotations

from pathlib import Path

#: `uvicorn publisher_v2.web.app:app --workers 2 --log-config <this>`: every line one event, JSON or console.
UVICORN_LOG_CONFIG = Path(__file__).resolve().with_name("uvicorn_logging.json")

if __name__ == "__main__":
    print(UVICORN_LOG_CONFIG)
