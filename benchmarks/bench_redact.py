"""redact_text per call: this tree's against a git REF's, side by side, interleaved (issue 21 item 6).

The run-of-12 redaction adds a probe (one set look-up per 6 characters) to every string that is checked. This
measures what that costs on the strings a deployment logs, with the eight secrets of bench_log_json registered
in both modules (each module is loaded separately, so each has its own registry):
- **short**: field values of a typical event (a route, an image name, a method, a correlation id);
- **line**: a 160-character error message with no secret;
- **trace**: a 2,000-character traceback with no secret;
- **hit**: a 200-character peer error echoing 22 characters of a token (the slow path: redaction happens).

Blocks of `--block` calls per (variant, text) pair, round-robin over `--rounds` rounds (order rotated each
round). Prints per text the median µs per call of each variant, the spread (min..max over rounds), and the
median of the per-round ratios current/baseline.

    .venv/bin/python benchmarks/bench_redact.py [--baseline main] [--rounds 15] [--block 2000]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parent.parent
SECRETS = [
    "sk-proj-Zq8xW3vN5mK2pL9rT4yU7iO1aS6dF0gH",
    "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq",
    "Tr0ub4dor&3-horse!battery",
    "EAAGm0PX4ZCpsBAKZCZAlongInstagramToken2024",
    "dbx-refresh-Qw3rTy-UiOp-AsDf-GhJk-LzXc",
    "correct-horse-admin-pw-91",
    "api-token-5f9d2c7b8e1a4d3c",
    "mail-pass-Xy7!Qz9@Wv",
]
TEXTS: Dict[str, List[str]] = {
    "short": ["/api/images/random", "IMG_0042.jpg", "GET", "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b", "http_access"],
    "line": [
        "Instagram publish failed: the container IMG_0042 did not reach FINISHED within 60 s (status IN_PROGRESS);"
        " will retry after 2.0 s"
    ],
    "trace": [
        "Traceback (most recent call last):\n"
        + "".join(
            f'  File "/srv/app/publisher_v2/services/module_{i}.py", line {100 + i}, in function_{i}\n'
            f"    result = await self.client.call(argument_{i}, timeout=self.timeout)\n"
            for i in range(16)
        )
        + "httpx.ConnectError: [Errno 111] Connection refused"
    ],
    "hit": [
        "Graph API error 190: Invalid OAuth access token - Cannot parse access token EAAGm0PX4ZCpsBAKZCZAlo"
        " (code 190, subcode 463); the token you passed was rejected, please renew it and try again later."
    ],
}


def load(source: str, name: str) -> Callable[[str], str]:
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for secret in SECRETS:
        module.register_secret(secret)  # type: ignore[attr-defined]
    return module.redact_text  # type: ignore[attr-defined,no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=2000)
    args = parser.parse_args()
    old = subprocess.run(
        ["git", "show", f"{args.baseline}:publisher_v2/utils/redact.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    variants = {
        "baseline": load(old, "bench_redact_baseline"),
        "current": load((ROOT / "publisher_v2/utils/redact.py").read_text(encoding="utf-8"), "bench_redact_current"),
    }
    assert "EAAGm0PX4ZCpsBAKZCZAlo" not in variants["current"](TEXTS["hit"][0])
    times: Dict[tuple, List[float]] = {(v, t): [] for v in variants for t in TEXTS}
    pairs = list(times)
    for round_ in range(args.rounds):
        shift = round_ % len(pairs)
        for variant, text in pairs[shift:] + pairs[:shift]:
            redact, strings = variants[variant], TEXTS[text]
            start = time.perf_counter()
            for _ in range(args.block):
                for s in strings:
                    redact(s)
            times[(variant, text)].append((time.perf_counter() - start) / (args.block * len(strings)) * 1e6)
    print(f"redact_text, µs per call (median, min..max over {args.rounds} rounds); baseline = {args.baseline}")
    for text in TEXTS:
        cells = []
        for variant in variants:
            values = times[(variant, text)]
            cells.append(f"{variant} {statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})")
        ratios = [c / b for c, b in zip(times[("current", text)], times[("baseline", text)])]
        print(f"  {text:<6} " + "  ".join(cells) + f"  ratio {statistics.median(ratios):.2f}"
              f" ({min(ratios):.2f}..{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
