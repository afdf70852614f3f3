"""Benchmark: the ledger on SQLite vs PostgreSQL, in one process, interleaved.

1. Per-image write path, as a run records one post: claim → publishing → for each of 3 platforms 'sending' then
   'posted' → finish → archived (9 transactions). Blocks of --images images alternate between the stores
   (SQLite first in odd blocks, PostgreSQL first in even ones); per block, ms per image.
2. Selection on a 10,000-image library of which 9,990 are posted (the steady state of bench_selection.py's b2,
   with hashes listed as a Dropbox listing gives them): the calls of `WorkflowOrchestrator._select_image` on the
   ledger — `known_hashes()`, drop the known entries, shuffle, `claim` the first new one (released afterwards,
   not timed). Alternating stores, --repeats times. Target (issue 15): PostgreSQL within 2x of SQLite.

SQLite: a WAL file in a temp folder (synchronous = NORMAL, as the app runs it). PostgreSQL: `--url`, else a
throw-away local server started like the tests do (tests/pg_server.py: fsync off, loopback TCP). Ratios are
PostgreSQL / SQLite per interleaved pair; median and spread (min..max) are printed.

    .venv/bin/python benchmarks/bench_ledger_stores.py [--url postgresql://...] [--blocks 8] [--images 50]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from publisher_v2.ledger import PostLedger  # noqa: E402

PLATFORMS = ("telegram", "instagram", "email")


def one_post(ledger: PostLedger, digest: str) -> None:
    """The ledger calls of one published image, in the workflow's order."""
    assert ledger.claim(digest, f"{digest[:8]}.jpg")
    ledger.mark_publishing(digest)
    for platform in PLATFORMS:
        assert ledger.begin_sending(digest, platform)
        ledger.record_outcome(digest, platform, True, f"{platform}-{digest[:8]}", None)
    assert ledger.finish_post(digest, f"{digest[:8]}.jpg", archive=True)
    ledger.mark_archived(digest)


def write_block(ledger: PostLedger, tag: str, images: int) -> float:
    """Seconds per image for `images` fresh posts."""
    start = time.perf_counter()
    for index in range(images):
        one_post(ledger, f"{tag}-{index:06d}")
    return (time.perf_counter() - start) / images


def fill_library(ledger: PostLedger, hashes: List[str], posted: int) -> None:
    """`posted` of `hashes` recorded as posted (setup, not timed)."""
    for digest in hashes[:posted]:
        ledger.record_post(digest, f"{digest[:8]}.jpg", {"outbox": {"success": True, "post_id": digest[:8]}})


def select_once(ledger: PostLedger, hashes: List[str], rng: random.Random) -> Tuple[float, str]:
    """One selection as `_select_image` does it with listed hashes; (seconds, the claimed hash)."""
    start = time.perf_counter()
    known = ledger.known_hashes()
    candidates = [h for h in hashes if h not in known]
    rng.shuffle(candidates)
    chosen = ""
    for digest in candidates:
        if ledger.claim(digest, f"{digest[:8]}.jpg"):
            chosen = digest
            break
    elapsed = time.perf_counter() - start
    assert chosen, "nothing left to select"
    return elapsed, chosen


def interleave(
    stores: Dict[str, PostLedger], rounds: int, measure: Callable[[str, PostLedger, int], float]
) -> Dict[str, List[float]]:
    """Run `measure` on each store in alternating order; per-store lists of results."""
    results: Dict[str, List[float]] = {name: [] for name in stores}
    names = list(stores)
    for round_no in range(rounds):
        for name in names if round_no % 2 == 0 else reversed(names):
            results[name].append(measure(name, stores[name], round_no))
    return results


def report(title: str, results: Dict[str, List[float]], unit: float, label: str) -> List[float]:
    ratios = [pg / lite for lite, pg in zip(results["sqlite"], results["postgresql"])]
    print(f"\n{title}")
    for name, values in results.items():
        shown = [v * unit for v in values]
        print(
            f"  {name:<10} median {statistics.median(shown):8.2f} {label}"
            f"  (min {min(shown):.2f}, max {max(shown):.2f}, n={len(shown)})"
        )
    print(
        f"  ratio postgresql/sqlite: median {statistics.median(ratios):.2f}"
        f" (min {min(ratios):.2f}, max {max(ratios):.2f}, per interleaved pair)"
    )
    return ratios


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a throw-away local server)")
    parser.add_argument("--blocks", type=int, default=8, help="write blocks per store")
    parser.add_argument("--images", type=int, default=50, help="images per write block")
    parser.add_argument("--library", type=int, default=10_000, help="images in the selection library")
    parser.add_argument("--posted", type=int, default=9_990, help="of which already posted")
    parser.add_argument("--repeats", type=int, default=9, help="selections per store")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the ledger's JSON events are not what is measured

    server = None
    url = args.url
    if url is None:
        from tests.pg_server import ThrowawayPostgres

        server = ThrowawayPostgres()
        url = server.url(server.new_database())
    folder = Path(tempfile.mkdtemp(prefix="bench_ledger_stores_"))
    try:
        stores = {"sqlite": PostLedger(folder / "ledger.sqlite"), "postgresql": PostLedger(url)}
        for ledger in stores.values():
            ledger.known_hashes()  # connect and create the schema (not timed)
            one_post(ledger, "warm-up")
        print(f"sqlite: {folder / 'ledger.sqlite'}; postgresql: {stores['postgresql'].where}")

        writes = interleave(stores, args.blocks, lambda n, led, r: write_block(led, f"w{r}", args.images))
        write_ratios = report(
            f"Write path per image (claim, publishing, 3 x sending+posted, finish, archived; {args.images} images"
            f" x {args.blocks} blocks)",
            writes,
            1000,
            "ms/image",
        )

        rng = random.Random(5)
        hashes = [f"{rng.getrandbits(256):064x}" for _ in range(args.library)]
        for ledger in stores.values():
            fill_library(ledger, hashes, args.posted)

        def measure(name: str, ledger: PostLedger, round_no: int) -> float:
            elapsed, chosen = select_once(ledger, hashes, random.Random(round_no))
            assert ledger.release(chosen)
            return elapsed

        selections = interleave(stores, args.repeats, measure)
        select_ratios = report(
            f"Selection on {args.library:,} images, {args.posted:,} posted (known_hashes, filter, shuffle, claim)",
            selections,
            1000,
            "ms",
        )
        within = statistics.median(select_ratios) <= 2.0
        print(
            f"\nwrite path ratio {statistics.median(write_ratios):.2f};"
            f" selection ratio {statistics.median(select_ratios):.2f}:"
            f" {'within' if within else 'NOT within'} 2x of SQLite"
        )
        for ledger in stores.values():
            ledger.close()
        return 0 if within else 1
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    sys.exit(main())
