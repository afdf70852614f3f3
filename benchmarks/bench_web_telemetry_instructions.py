"""Web telemetry, deterministic: CPU instructions per GET /api/images/random, for each variant of
`bench_web_telemetry_compare.py` (off, raw floor, app-log floor, autoinstrument, asgi-correlation-id,
OpenTelemetry).

Wall-clock throughput on a shared 2-core VM moves by ±10% between rounds; instruction counts do not. This runs
the ASGI stack in-process (no network) under valgrind's callgrind, counting only inside the measured loop
(`--toggle-collect=functools_reduce`: the loop is one `functools.reduce` call), with a seeded image choice, and
reports instructions per request for each variant (`--variants` picks a subset), and autoinstrument's added
instructions over the app-log floor's (the issue's bound: 1.25).

The end-to-end cost of a request through uvicorn is the other figure needed: `--e2e` also counts a real
uvicorn process serving N and 6N requests (the difference cancels start-up), to convert the added instructions
into a share of a whole request.

    .venv/bin/python benchmarks/bench_web_telemetry_instructions.py [--requests 200] [--e2e] [--variants a,b]
    .venv/bin/python benchmarks/bench_web_telemetry_instructions.py --opcodes [--requests 200] [--by-function]

Needs Debian's valgrind (`apt-get install valgrind`). `--opcodes` counts interpreted bytecodes instead (no
valgrind: `sys.settrace` with opcode events, same loop, same seed): on this pure-Python path the wall clock
follows bytecodes more closely than machine instructions (each one is an indirect-branch dispatch that
callgrind counts as one instruction).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from bench_web import build_library, free_port  # noqa: E402

CHILD = r'''
import asyncio, functools, os, random
import publisher_v2.web.app as module
from publisher_v2.utils.logging import setup_logging
from bench_web_telemetry_compare import Switch
from asgi_floor import get

app = module.app
setup_logging(stream=open(os.devnull, "w"))  # the app's JSON handler, writing to /dev/null
Switch(app, os.open(os.devnull, os.O_WRONLY)).use(os.environ["BENCH_VARIANT"])

def call():
    return get(app)

loop = asyncio.new_event_loop()
for _ in range(300):
    loop.run_until_complete(call())
random.seed(1234)
def step(total, _):
    loop.run_until_complete(call())
    return total
functools.reduce(step, range(int(os.environ["BENCH_REQUESTS"])), 0)
'''

from bench_web_telemetry_compare import VARIANTS  # noqa: E402

# The same loop, counting bytecodes executed inside it (prints one number).
OPCODES = CHILD.replace(
    "functools.reduce(step,",
    """import sys
counted = [0]
def tracer(frame, event, arg):
    frame.f_trace_opcodes = True
    if event == "opcode":
        counted[0] += 1
    return tracer
sys.settrace(tracer)
functools.reduce(step,""",
) + "\nsys.settrace(None)\nprint(counted[0])\n"

# The same count per function (`--by-function`): where a variant's bytecodes go, as one JSON object.
OPCODES_BY_FUNCTION = CHILD.replace(
    "functools.reduce(step,",
    """import sys, json, collections
counted = collections.Counter()
def tracer(frame, event, arg):
    frame.f_trace_opcodes = True
    if event == "opcode":
        code = frame.f_code
        counted[os.path.basename(code.co_filename) + ":" + code.co_name] += 1
    return tracer
sys.settrace(tracer)
functools.reduce(step,""",
) + "\nsys.settrace(None)\nprint(json.dumps(counted))\n"


def callgrind_total(out_file: Path) -> int:
    for line in out_file.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out_file}")


def count_in_process(ini: Path, variant: str, requests: int, work: Path) -> float:
    out = work / f"callgrind.{variant}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBLISHER_", "AUTOINSTRUMENT"))}
    env.update(CONFIG_PATH=str(ini), PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    env.update(BENCH_VARIANT=variant, BENCH_REQUESTS=str(requests), PYTHONHASHSEED="0")
    subprocess.run(
        ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=functools_reduce",
         f"--callgrind-out-file={out}", sys.executable, "-c", CHILD],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return callgrind_total(out) / requests


def count_opcodes(ini: Path, variant: str, requests: int, by_function: bool = False) -> Any:
    """Bytecodes per request (or, `by_function`, a dict of them per `file:function`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBLISHER_", "AUTOINSTRUMENT"))}
    env.update(CONFIG_PATH=str(ini), PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    env.update(BENCH_VARIANT=variant, BENCH_REQUESTS=str(requests), PYTHONHASHSEED="0")
    out = subprocess.run(
        [sys.executable, "-c", OPCODES_BY_FUNCTION if by_function else OPCODES],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    last = [line for line in out if line.strip()][-1]
    if by_function:
        return {name: count / requests for name, count in json.loads(last).items()}
    return int(last) / requests


def count_uvicorn(ini: Path, requests: int, work: Path, tag: str) -> int:
    """Instructions of a whole uvicorn process (middleware off) that served `requests` requests."""
    out, port = work / f"callgrind.e2e.{tag}", free_port()
    env = dict(os.environ, CONFIG_PATH=str(ini), PYTHONPATH=str(REPO), PUBLISHER_AUTOINSTRUMENT="0")
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m", "uvicorn",
         "publisher_v2.web.app:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
         "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for _ in range(requests):
                client.get("/api/images/random").raise_for_status()
    finally:
        process.send_signal(2)
        process.wait(timeout=600)
    return callgrind_total(out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--e2e", action="store_true", help="also count a whole uvicorn request (slow)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    parser.add_argument("--opcodes", action="store_true", help="count bytecodes (sys.settrace), not instructions")
    parser.add_argument("--by-function", action="store_true", help="with --opcodes: per function, against off")
    args = parser.parse_args(argv)
    if args.opcodes:
        return opcodes_main(args)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench_web_instr_"))
    try:
        ini = build_library(work, 1000)
        variants = [v for v in args.variants.split(",") if v]
        # One library (images, sidecars, ledger and its hash cache) per variant: the processes run in parallel,
        # and a variant that found another's cached content hashes on disk once counted ~500,000 fewer
        # instructions per request than `off` (the figures then depended on the order the pool ran them in).
        inis = {v: build_library(work / v, 1000) for v in variants}
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            counts: Dict[str, float] = dict(
                zip(variants, pool.map(lambda v: count_in_process(inis[v], v, args.requests, work), variants))
            )
            e2e = None
            if args.e2e:
                small, large = pool.map(
                    lambda n: count_uvicorn(ini, n, work, str(n)), (args.requests // 2, args.requests * 3)
                )
                e2e = (large - small) / (args.requests * 3 - args.requests // 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    off = counts["off"]
    print(f"instructions per GET {'/api/images/random'} in-process ({args.requests} requests, seeded):")
    for variant in variants:
        added = counts[variant] - off
        share = f"   {added / e2e * 100:5.1f}% of a whole uvicorn request" if e2e and variant != "off" else ""
        print(f"  {variant:24s} {counts[variant]:10,.0f}   {added:+10,.0f}{share}")
    if e2e:
        print(f"  a whole request through uvicorn (middleware off): {e2e:,.0f}")
    for ours in ("autoinstrument", "autoinstrument_web_only"):
        if ours in counts and "app_log_floor" in counts:
            ratio = (counts[ours] - off) / (counts["app_log_floor"] - off)
            print(f"  {ours} / app-log floor (added instructions): {ratio:.2f}")
    return 0


def opcodes_main(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench_web_opcodes_"))
    try:
        variants = [v for v in args.variants.split(",") if v]
        if args.by_function:
            per = {v: count_opcodes(build_library(work / v, 1000), v, args.requests, True) for v in variants}
        else:
            counts = {v: count_opcodes(build_library(work / v, 1000), v, args.requests) for v in variants}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.by_function:
        return print_by_function(per, variants)
    off = counts["off"]
    print(f"bytecodes executed per GET /api/images/random in-process ({args.requests} requests, seeded):")
    for variant in variants:
        print(f"  {variant:24s} {counts[variant]:10,.0f}   {counts[variant] - off:+8,.0f}")
    for ours in ("autoinstrument", "autoinstrument_web_only"):
        if ours in counts and "app_log_floor" in counts:
            ratio = (counts[ours] - off) / (counts["app_log_floor"] - off)
            print(f"  {ours} / app-log floor (added bytecodes): {ratio:.2f}")
    return 0


def print_by_function(per: Dict[str, Dict[str, float]], variants: List[str]) -> int:
    """Each variant's bytecodes per request per function, added over `off` (functions that differ only)."""
    off = per.get("off", {})
    for variant in variants:
        if variant == "off":
            continue
        counts = per[variant]
        added = {name: counts.get(name, 0.0) - off.get(name, 0.0) for name in set(counts) | set(off)}
        print(f"{variant}: {sum(added.values()):+,.0f} bytecodes per request over off")
        for name, value in sorted(added.items(), key=lambda item: -abs(item[1])):
            if abs(value) >= 1:
                print(f"  {value:+8,.0f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
