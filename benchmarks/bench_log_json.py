"""log_json throughput: events per second through `setup_logging`'s handler, against a floor, interleaved.

Variants, each writing the same typical web event (a correlation id bound, six fields: strings, ints, a bool)
to `os.devnull` through a real stream:
- **floor**: the least any JSON logger does: build the dict, `orjson.dumps`, one `write` + `flush`;
- **log_json**: `publisher_v2.utils.logging.log_json` as the app runs it (JSON format, `setup_logging`);
- **log_json+secrets**: the same with eight registered secrets (a configured deployment: every string is also
  checked for them and their encoded forms);
- **…/id**: a new correlation id for every event (one event per web request: the id is never seen twice);
- **baseline**, **baseline+secrets** (with `--baseline REF`): `log_json` from `publisher_v2/utils/logging.py`
  at git REF, loaded as separate modules in this process, so before/after are measured side by side.

Blocks of `--block` events per variant, round-robin over `--rounds` rounds (the order rotates each round), so
drift and noisy neighbours hit every variant alike. Prints per variant the median events/s, the spread
(min..max over rounds) and the median of the per-round ratios to the floor.

    .venv/bin/python benchmarks/bench_log_json.py [--rounds 15] [--block 20000] [--baseline main] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from publisher_v2.utils import logging as app_logging  # noqa: E402

FIELDS = dict(method="GET", route="/api/images/random", status=200, image_name="IMG_0042.jpg", cached=True, n=7)
CID = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
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


def load_module(source: str, name: str) -> object:
    """Import `source` as its own module `name` (its own ContextVar and secret list)."""
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing resolve names through sys.modules
    spec.loader.exec_module(module)
    return module


def load_with_own_secrets() -> object:
    """The current logging module again, over its OWN copy of the redaction module, so the secrets registered
    for the "+secrets" variant are not seen by the plain one."""
    from publisher_v2.utils import redact

    name = "publisher_v2.utils.redact"
    shared = sys.modules[name]
    sys.modules[name] = load_module(Path(redact.__file__).read_text(encoding="utf-8"), "secrets_redact")
    try:
        return load_module(Path(app_logging.__file__).read_text(encoding="utf-8"), "secrets_logging")
    finally:
        sys.modules[name] = shared


def git_source(ref: str) -> str:
    """`publisher_v2/utils/logging.py` as it is at git `ref`."""
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:publisher_v2/utils/logging.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _json_logger(module: object, name: str, stream: io.TextIOBase) -> logging.Logger:
    """A logger whose only handler is `module`'s own (made by its setup_logging on a private root-like parent)."""
    root = logging.getLogger()
    saved = list(root.handlers)
    module.setup_logging(logging.INFO, stream=stream)  # type: ignore[attr-defined]
    handler = [h for h in root.handlers if h not in saved][0]
    root.removeHandler(handler)
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def make_variants(
    stream: io.TextIOBase, baseline: object, with_secrets: object, baseline_with_secrets: object
) -> Dict[str, Callable[[int], None]]:
    def floor(n: int) -> None:
        for _ in range(n):
            event = {"timestamp": "2026-12-01T22:00:00.000Z", "level": "INFO", "logger": "bench", "message": "evt"}
            event["correlation_id"] = CID
            event.update(FIELDS)
            stream.write(orjson.dumps(event).decode() + "\n")
            stream.flush()

    fresh_ids = [str(uuid.uuid4()) for _ in range(4096)]

    def through(module: object, name: str, fresh: bool = False) -> Callable[[int], None]:
        logger = _json_logger(module, name, stream)
        log = module.log_json  # type: ignore[attr-defined]
        var = module.correlation_id  # type: ignore[attr-defined]

        def run(n: int) -> None:
            token = var.set(CID)
            try:
                for _ in range(n):
                    log(logger, logging.INFO, "web_random_image", **FIELDS)
            finally:
                var.reset(token)

        def run_fresh(n: int) -> None:  # a new correlation id per event, as one event per web request has
            for i in range(n):
                token = var.set(fresh_ids[i & 4095])
                log(logger, logging.INFO, "web_random_image", **FIELDS)
                var.reset(token)

        return run_fresh if fresh else run

    variants = {
        "floor": floor,
        "log_json": through(app_logging, "bench.current"),
        "log_json+secrets": through(with_secrets, "bench.secrets"),
        "log_json+secrets/id": through(with_secrets, "bench.secrets_ids", fresh=True),
    }
    if baseline is not None:
        variants["baseline"] = through(baseline, "bench.baseline")
        variants["baseline+secrets"] = through(baseline_with_secrets, "bench.baseline_secrets")
        variants["baseline+secrets/id"] = through(baseline_with_secrets, "bench.baseline_secrets_ids", fresh=True)
    return variants


def main(argv: List[str] = None) -> int:  # type: ignore[assignment]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=20000)
    parser.add_argument("--baseline", help="git ref whose log_json runs side by side (e.g. main)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115  # a real file stream, kept open
    baseline = baseline_with_secrets = None
    if args.baseline:
        baseline = load_module(git_source(args.baseline), "baseline_logging")
        baseline_with_secrets = load_module(git_source(args.baseline), "baseline_secrets_logging")
        for secret in SECRETS:
            baseline_with_secrets.register_secret(secret)  # type: ignore[attr-defined]
    with_secrets = load_with_own_secrets()
    for secret in SECRETS:
        with_secrets.register_secret(secret)  # type: ignore[attr-defined]
    variants = make_variants(stream, baseline, with_secrets, baseline_with_secrets)
    names = list(variants)
    rates: Dict[str, List[float]] = {name: [] for name in names}
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            start = time.perf_counter()
            variants[name](args.block)
            rates[name].append(args.block / (time.perf_counter() - start))

    floor = rates["floor"]
    report = {}
    for name, values in rates.items():
        if not values:
            continue
        ratios = [floor[i] / v for i, v in enumerate(values)] if name != "floor" else [1.0] * len(values)
        report[name] = {
            "events_per_s": round(statistics.median(values)),
            "min": round(min(values)),
            "max": round(max(values)),
            "us_per_event": round(1e6 / statistics.median(values), 2),
            "cost_vs_floor": round(statistics.median(ratios), 2),
        }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.rounds} rounds x {args.block} events per variant, interleaved, one process")
        print(f"{'variant':<20} {'events/s':>10} {'spread (min..max)':>22} {'us/event':>9} {'x floor':>8}")
        for name, row in report.items():
            spread = f"{row['min']}..{row['max']}"
            print(
                f"{name:<20} {row['events_per_s']:>10} {spread:>22} {row['us_per_event']:>9} "
                f"{row['cost_vs_floor']:>8}"
            )
        if "baseline" in report:
            pairs = (("log_json", "baseline"), ("log_json+secrets", "baseline+secrets"))
            for mine, theirs in (*pairs, ("log_json+secrets/id", "baseline+secrets/id")):
                change = report[theirs]["cost_vs_floor"] / report[mine]["cost_vs_floor"] - 1
                print(f"{mine} vs {theirs} ({args.baseline}): {change:+.1%} events/s (against the floor)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
