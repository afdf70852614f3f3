"""What each decision the web middleware once inlined for speed saves over calling its ONE reference function.

    .venv/bin/python benchmarks/bench_hot_path_copies.py [--rounds 15] [--number 200000]

Per decision, the inline copy and the reference call run over the same input, interleaved round by round;
the figure is the median over rounds of (reference - inline) ns per request, with its 10th..90th percentile.
Issue 20's rule: where the copy saves < 1 us per request, the middleware calls the reference instead (so the
copies below are the ones that were removed; docs_v2/benchmarks.md has the figures).

    status_level   status code -> log level          (web.gate.status_level)
    to_ms          seconds -> integer ms, half up    (runtime.scope.to_ms), 3 fields per request
    header         our response header, unless set   (web.middleware._with_header)
    merged         the app's held event + ours       (web.gate.merged, then one call of the log function)
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import timeit
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from autoinstrument.runtime.scope import to_ms  # noqa: E402
from autoinstrument.web.gate import merged, status_level  # noqa: E402
from autoinstrument.web.middleware import _with_header  # noqa: E402


def log(logger, level, event, **fields):
    return None


SETUP = {
    "status_level": dict(code=200, error=None, ERROR=logging.ERROR, WARNING=logging.WARNING, INFO=logging.INFO,
                         status_level=status_level),
    "to_ms": dict(a=0.0123456, b=0.2, c=1.5e-05, to_ms=to_ms),
    "header": dict(
        message={"type": "http.response.start", "status": 200,
                 "headers": [(b"content-type", b"application/json"), (b"content-length", b"12"),
                             (b"date", b"x"), (b"server", b"uvicorn")]},
        header=(b"x-correlation-id", b"0123456789abcdef0123456789abcdef"), size=16, _with_header=_with_header),
    "merged": dict(
        entry=(logging.getLogger("app"), logging.INFO, "web_random_image", {"image": "a.jpg", "size": 3}),
        payload={"correlation_id": "c", "web_random_image_ms": 4, "method": "GET", "route": "/r",
                 "status_code": 200, "lookup_ms": 1},
        owned=("correlation_id", "web_random_image_ms", "lookup_ms"), level=logging.INFO, function=log,
        merged=merged),
}

PAIRS = {
    "status_level": (
        "if error is not None or type(code) is not int or code >= 500:\n    level = ERROR\n"
        "elif code >= 400:\n    level = WARNING\nelse:\n    level = INFO",
        "level = status_level(code, error)",
    ),
    "to_ms": (
        "x = int(a * 1000.0 + 0.5); y = int(b * 1000.0 + 0.5); z = int(c * 1000.0 + 0.5)",
        "x = to_ms(a); y = to_ms(b); z = to_ms(c)",
    ),
    "header": (
        "headers = message.get('headers') or ()\nname = header[0]\n"
        "for key, _value in headers:\n    if len(key) == size and (key == name or key.lower() == name):\n"
        "        break\nelse:\n    m = dict(message)\n    m['headers'] = [*headers, header]",
        "m = _with_header(message, header)",
    ),
    "merged": (
        "logger, app_level, event, fields = entry\n"
        "if fields.keys().isdisjoint(payload):\n"
        "    lv = app_level if isinstance(app_level, int) and app_level > level else level\n"
        "    function(logger, lv, event, **fields, **payload)",
        "logger, lv, event, fields = merged(entry, payload, level, owned)\nfunction(logger, lv, event, **fields)",
    ),
}


def measure(rounds: int, number: int) -> Dict[str, List[float]]:
    diffs: Dict[str, List[float]] = {name: [] for name in PAIRS}
    for _ in range(rounds):
        for name, (inline, reference) in PAIRS.items():
            env = dict(SETUP[name])
            t_inline = timeit.Timer(inline, globals=env).timeit(number) / number * 1e9
            t_ref = timeit.Timer(reference, globals=env).timeit(number) / number * 1e9
            diffs[name].append(t_ref - t_inline)
    return diffs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args(argv)
    diffs = measure(args.rounds, args.number)
    print(f"python {sys.version.split()[0]}; what the inline copy saves per request, ns (reference - inline)")
    for name, values in diffs.items():
        ordered = sorted(values)
        med = statistics.median(values)
        p10, p90 = ordered[len(ordered) // 10], ordered[(len(ordered) * 9) // 10]
        choice = "keep the copy" if med >= 1000.0 else "call the reference"
        print(f"  {name:<13} {med:7.0f}  ({p10:.0f}..{p90:.0f})  -> {choice}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
