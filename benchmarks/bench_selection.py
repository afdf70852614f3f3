"""Benchmark: image listing + selection over a library of 10,000 small images, cold vs warm hash cache.

Each measured run is a FRESH Python process (same interpreter, same imports, OS page cache equally warm),
which lists the library with `LocalStorage.list_images` and picks an image exactly as the CLI does: through
`WorkflowOrchestrator._select_image` built by `publisher_v2.wiring.build_orchestrator` when the app imports,
otherwise through a replica of the same calls (known_hashes, shuffle, content_hash, claim).

Scenarios (the hash cache and the ledger share one SQLite file, as the wiring sets them up):
  a1  fresh library, empty ledger, empty hash cache (first run)
  a2  the run after a1 (a1's claim is in the ledger; the cache holds what a1 hashed)
  b1  late library: 9,990 of 10,000 already posted (recorded with their real hashes), EMPTY hash cache
  b2  the same ledger with the hash cache the runs that posted those 9,990 left behind (steady state)
  b3  the run right after b1, with only what b1 hashed cached (informative: a cache fills over runs)

Per run: wall time of listing and of selection (median over --repeats shuffles), image bytes hashed (counted
at the hashing function), all bytes read by the process during the stage (/proc/self/io rchar: includes SQLite
pages), and peak RSS (ru_maxrss) of the process.

Target (issue 2): b2's selection reads no image bytes except the chosen one's and takes under 10% of b1's;
a2's selection reads at most the chosen image. Exit status 1 if missed.

    .venv/bin/python benchmarks/bench_selection.py --dir .bench/selection
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LIBRARY_MARKER = ".bench_library.json"


# -- setup (not measured) ------------------------------------------------------------------------------------


def generate_library(folder: Path, count: int, seed: int = 1) -> None:
    """`count` real 64x48 JPEGs (distinct content), reused when `folder` already holds this exact library."""
    marker = folder / LIBRARY_MARKER
    wanted = {"count": count, "seed": seed, "size": [64, 48]}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return
    from PIL import Image

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    base = Image.effect_noise((64, 48), 40).convert("RGB")
    for i in range(count):
        tint = Image.new("RGB", (64, 48), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        image = Image.blend(base, tint, 0.5)
        image.putpixel((i % 64, (i // 64) % 48), (i % 256, (i // 256) % 256, 7))  # guarantees distinct bytes
        image.save(folder / f"img_{i:05d}.jpg", "JPEG", quality=85)
    marker.write_text(json.dumps(wanted))


def real_hashes(folder: Path, cache_file: Path) -> Dict[str, str]:
    """{name: Dropbox content hash} of every image, computed directly (never through the storage's cache)."""
    from publisher_v2.utils.images import dropbox_content_hash

    names = sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg")
    key = [[n, (folder / n).stat().st_size, (folder / n).stat().st_mtime_ns] for n in names]
    if cache_file.is_file():
        saved = json.loads(cache_file.read_text())
        if saved.get("key") == key:
            return saved["hashes"]
    hashes = {n: dropbox_content_hash(folder / n) for n in names}
    cache_file.write_text(json.dumps({"key": key, "hashes": hashes}))
    return hashes


def make_late_ledger(path: Path, hashes: Dict[str, str], posted: int, seed: int) -> List[str]:
    """A ledger with `posted` images recorded as posted; returns the names left unposted."""
    from publisher_v2.ledger import PostLedger

    names = sorted(hashes)
    random.Random(seed).shuffle(names)
    ledger = PostLedger(path)
    for name in names[:posted]:
        ledger.record_post(hashes[name], name, {"outbox": {"success": True, "post_id": name, "error": None}})
    ledger.close()
    return sorted(names[posted:])


def fill_hash_cache(library: Path, state_file: Path) -> None:
    """The hash cache as the history of runs leaves it: every image hashed once, through LocalStorage."""
    from publisher_v2.services.storage.local import LocalStorage

    async def fill() -> None:
        storage = LocalStorage(library, hash_cache_path=state_file)
        for entry in await storage.list_images():
            await storage.content_hash(entry)
        storage.close()

    asyncio.run(fill())


def copy_state(source: Path, target: Path) -> None:
    """Copy an SQLite file consistently (WAL included) with the backup API."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()


def write_ini(folder: Path, library: Path, state_file: Path) -> Path:
    ini = folder / "bench.ini"
    ini.write_text(
        "[Local]\n"
        f"image_folder = {library}\n"
        "[Content]\n"
        "archive = false\n"
        "[Publishing]\n"
        f"outbox_folder = {folder / 'outbox'}\n"
        "[State]\n"
        f"ledger_path = {state_file}\n",
        encoding="utf-8",
    )
    return ini


# -- one measured run (child process) ------------------------------------------------------------------------


def _rchar() -> int:
    with open("/proc/self/io", encoding="ascii") as io_file:
        for line in io_file:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return -1


async def _measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    import publisher_v2.services.storage.local as local_module
    from publisher_v2.utils.images import dropbox_content_hash

    hashed: Dict[str, int] = {}  # file name -> bytes read to hash it

    def counting_hash(stream: Any) -> str:
        digest = dropbox_content_hash(stream)
        hashed[os.path.basename(stream.name)] = stream.tell()
        return digest

    local_module.dropbox_content_hash = counting_hash  # type: ignore[assignment]

    library, state_file = Path(spec["library"]), Path(spec["state"])
    mode = spec["mode"]
    orchestrator = None
    if mode in ("auto", "orchestrator"):
        try:
            from publisher_v2.config.loader import load_application_config
            from publisher_v2.core.workflow import _RunOptions
            from publisher_v2.wiring import build_orchestrator

            orchestrator = build_orchestrator(load_application_config(Path(spec["ini"])))
            mode = "orchestrator"
        except ImportError as exc:
            if mode == "orchestrator":
                raise
            mode = f"replica ({exc.name} not importable)"
    if orchestrator is None:
        from publisher_v2.ledger import PostLedger
        from publisher_v2.services.storage.local import LocalStorage

        storage = LocalStorage(library, hash_cache_path=state_file)
        ledger = PostLedger(state_file)

    random.seed(spec["seed"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    read0, t0 = _rchar(), time.perf_counter()
    if orchestrator is not None:
        images = await orchestrator._list_images()
    else:
        images = await storage.list_images()
    t1, read1 = time.perf_counter(), _rchar()
    listed_hashes = sum(1 for e in images if e.content_hash)
    if orchestrator is not None:
        selection = await orchestrator._select_image(images, _RunOptions(None, False, False, False))
        chosen = selection.entry.name if selection else None
    else:
        chosen = None
        known = ledger.known_hashes()
        candidates = list(images)
        random.shuffle(candidates)
        for entry in candidates:
            digest = await storage.content_hash(entry)
            if digest in known:
                continue
            if ledger.claim(digest, entry.name):
                chosen = entry.name
                break
            known.add(digest)
    t2, read2 = time.perf_counter(), _rchar()
    return {
        "mode": mode,
        "listed": len(images),
        "listed_with_hash": listed_hashes,
        "list_s": t1 - t0,
        "select_s": t2 - t1,
        "list_rchar": read1 - read0,
        "select_rchar": read2 - read1,
        "hashed_files": len(hashed),
        "hashed_bytes": sum(hashed.values()),
        "unchosen_bytes": sum(size for name, size in hashed.items() if name != chosen),
        "chosen": chosen,
        "rss_before_kib": rss_before,
        "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def child_main(spec_json: str) -> int:
    import logging

    logging.disable(logging.CRITICAL)  # the workflow's JSON events would otherwise go to stderr
    print(json.dumps(asyncio.run(_measure(json.loads(spec_json)))))
    return 0


def run_child(spec: Dict[str, Any]) -> Dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
        cwd=str(REPO),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- orchestration -------------------------------------------------------------------------------------------


def summarize(result: Dict[str, Any]) -> Dict[str, Any]:
    runs = result["runs"]
    return {
        "label": result["label"],
        "mode": runs[0]["mode"],
        "list_ms": statistics.median(r["list_s"] for r in runs) * 1000,
        "select_ms": statistics.median(r["select_s"] for r in runs) * 1000,
        "hashed_files": statistics.median(r["hashed_files"] for r in runs),
        "hashed_bytes": statistics.median(r["hashed_bytes"] for r in runs),
        "max_unchosen_bytes": max(r["unchosen_bytes"] for r in runs),
        "select_rchar": statistics.median(r["select_rchar"] for r in runs),
        "list_rchar": statistics.median(r["list_rchar"] for r in runs),
        "rss_peak_mib": max(r["rss_peak_kib"] for r in runs) / 1024,
        "rss_growth_mib": max(r["rss_peak_kib"] - r["rss_before_kib"] for r in runs) / 1024,
        "all_chose": all(r["chosen"] for r in runs),
        "runs": len(runs),
    }


COLUMNS = [
    ("scenario", "label", "{}"),
    ("list ms", "list_ms", "{:.1f}"),
    ("select ms", "select_ms", "{:.1f}"),
    ("files hashed", "hashed_files", "{:.0f}"),
    ("image bytes read", "hashed_bytes", "{:,.0f}"),
    ("rchar list", "list_rchar", "{:,.0f}"),
    ("rchar select", "select_rchar", "{:,.0f}"),
    ("peak RSS MiB", "rss_peak_mib", "{:.1f}"),
    ("RSS growth MiB", "rss_growth_mib", "{:.1f}"),
]


def print_table(results: List[Dict[str, Any]], markdown: bool) -> None:
    """The summary as aligned text, or as a Markdown table for docs_v2/benchmarks.md."""
    cells = [[fmt.format(row[key]) for _, key, fmt in COLUMNS] for row in results]
    titles = [title for title, _, _ in COLUMNS]
    if markdown:
        print("| " + " | ".join(titles) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(titles))) + "|")
        for line in cells:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(t), *(len(line[i]) for line in cells)) for i, t in enumerate(titles)]
    print("  ".join(t.ljust(w) if i == 0 else t.rjust(w) for i, (t, w) in enumerate(zip(titles, widths))))
    for line in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, help="work folder; the generated library is kept there between runs"
    )
    parser.add_argument("--count", type=int, default=10_000, help="images in the library")
    parser.add_argument("--posted", type=int, default=9_990, help="images already posted in scenario b")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario (different shuffles)")
    parser.add_argument("--mode", choices=["auto", "orchestrator", "replica"], default="auto")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)

    workdir = args.dir.resolve() if args.dir else Path(tempfile.mkdtemp(prefix="bench_selection_"))
    workdir.mkdir(parents=True, exist_ok=True)
    library = workdir / "library"
    print(f"library: {library} ({args.count} images, 64x48 JPEG)", flush=True)
    generate_library(library, args.count)
    hashes = real_hashes(library, workdir / "hashes.json")
    state_dir = workdir / "state"
    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir()

    late = state_dir / "late_ledger.sqlite"
    unposted = make_late_ledger(late, hashes, args.posted, seed=11)
    warm_late = state_dir / "late_warm.sqlite"
    copy_state(late, warm_late)
    fill_hash_cache(library, warm_late)

    run_state = state_dir / "run.sqlite"
    ini = write_ini(state_dir, library, run_state)
    base = {"library": str(library), "state": str(run_state), "ini": str(ini), "mode": args.mode}
    seeds = [100 + i for i in range(args.repeats)]
    specs = [dict(base, seed=s) for s in seeds]

    labels = {
        "a1": "a1 fresh, first run",
        "a2": "a2 fresh, second run",
        "b1": "b1 late, cold cache",
        "b2": "b2 late, warm cache",
        "b3": "b3 late, run after b1",
    }
    runs: Dict[str, List[Dict[str, Any]]] = {key: [] for key in labels}
    for spec in specs:
        # Each pair runs back to back: the second run inherits exactly the state the first one left.
        for suffix in ("", "-wal", "-shm"):
            Path(str(run_state) + suffix).unlink(missing_ok=True)
        runs["a1"].append(run_child(spec))
        runs["a2"].append(run_child(dict(spec, seed=spec["seed"] + 1000)))
        copy_state(late, run_state)
        runs["b1"].append(run_child(spec))
        runs["b3"].append(run_child(dict(spec, seed=spec["seed"] + 1000)))
        copy_state(warm_late, run_state)
        runs["b2"].append(run_child(spec))
    results = [summarize({"label": labels[key], "runs": runs[key]}) for key in labels]

    mode = results[0]["mode"]
    print(f"\nselection via: {mode}; unposted in b: {len(unposted)}; median of {args.repeats} runs")
    print_table(results, markdown=args.markdown)
    by = {r["label"][:2]: r for r in results}
    ratio = by["b2"]["select_ms"] / by["b1"]["select_ms"] if by["b1"]["select_ms"] else float("inf")
    checks = {
        "b2 selection reads no image bytes but the chosen one's": by["b2"]["max_unchosen_bytes"] == 0,
        f"b2 selection under 10% of b1's (got {ratio:.1%})": ratio < 0.10,
        "a2 selection reads no image bytes but the chosen one's": by["a2"]["max_unchosen_bytes"] == 0,
        "every run chose an image": all(r["all_chose"] for r in results),
    }
    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        args.json.write_text(json.dumps({"summary": results, "checks": checks}, indent=2))
    if not args.dir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
