"""What the start-up switch costs a process: a bare interpreter that never imports a target, and the CLI's job.

    .venv/bin/python benchmarks/bench_autoinstrument_startup.py [--runs 40] [--cli-runs 20] [--json]

Each measurement is a fresh process (`subprocess.run`, wall clock from spawn to exit), the variants of one
measurement interleaved in a shuffled order per round so drift and noisy neighbours hit them alike:

    bare interpreter (`python -c pass`-like, importing nothing of any manifest):
        off                       no switch
        AUTOINSTRUMENT=1          the library's switch, AUTOINSTRUMENT_MANIFEST=telemetry.yaml
        PUBLISHER_AUTOINSTRUMENT=1  the app's declared alias (its .pth, its shipped manifest)
    the CLI's whole job (`publisher --config LIB/publisher.ini --dry-publish` on a 20-image sample library):
        off / PUBLISHER_AUTOINSTRUMENT=1

Reported per variant: median and 10th..90th percentile of the wall times, and the median of the paired
differences to `off` within a round (the figure the targets bound). The manifest cache is warmed first (one
run), as it is after the first start of a deployment, and so are the .pyc files (PYTHONDONTWRITEBYTECODE is
removed from the children's environment: pip writes them when it installs a wheel). Targets (issue 16): bare
+5 ms at most, CLI +20 ms at most; exit status 1 when one is missed.

Issue 20 adds: (1) a bare interpreter with a switch set never imports wrapt (nor yaml, nor the runtime): checked
in a child per switch; (2) the CLI job's CPU instructions with telemetry on vs off, counted by valgrind's
callgrind over the whole process (`--instructions N` runs per variant, interleaved; 0 skips), target +8 % at
most, on the same job every run (image choice seeded, PYTHONHASHSEED=0, `--dry-publish`). Wall clock is noisy
on a shared machine; instructions are not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BARE = "import sys"  # the interpreter starts, runs .pth lines, exits
HEAVY = ("wrapt", "yaml", "autoinstrument.runtime.install", "autoinstrument.manifest.loader")
PROBE_HEAVY = f"import sys, json; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"


def clean_env(**extra: str) -> Dict[str, str]:
    """The environment without switches, and with bytecode caching on: an installed package has its .pyc
    files (pip compiles them), so a benchmark that recompiles every module each start measures the compiler."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBLISHER_", "AUTOINSTRUMENT"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def wall(argv: List[str], env: Dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=str(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: {argv} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return elapsed * 1000.0


def interleaved(variants: Dict[str, Dict[str, str]], argv: List[str], runs: int, cwd: Path) -> Dict[str, List[float]]:
    times: Dict[str, List[float]] = {name: [] for name in variants}
    names = list(variants)
    for name in names:  # warm-up: page cache, the manifest cache
        wall(argv, variants[name], cwd)
    for _ in range(runs):
        random.shuffle(names)
        for name in names:
            times[name].append(wall(argv, variants[name], cwd))
    return times


def summary(times: Dict[str, List[float]]) -> Dict[str, Dict[str, float]]:
    off = times["off"]
    out = {}
    for name, values in times.items():
        ordered = sorted(values)
        paired = sorted(v - o for v, o in zip(values, off))
        out[name] = {
            "median_ms": round(statistics.median(values), 1),
            "p10_ms": round(ordered[len(ordered) // 10], 1),
            "p90_ms": round(ordered[(len(ordered) * 9) // 10], 1),
            "added_ms": round(statistics.median(paired), 1),
            "added_p10_ms": round(paired[len(paired) // 10], 1),
            "added_p90_ms": round(paired[(len(paired) * 9) // 10], 1),
        }
    return out


def heavy_modules(env: Dict[str, str], cwd: Path) -> List[str]:
    """Which heavy modules a bare interpreter with `env` has imported when it exits."""
    proc = subprocess.run([sys.executable, "-c", PROBE_HEAVY], env=env, cwd=str(cwd), capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout)


def instructions(argv: List[str], env: Dict[str, str], cwd: Path, out: Path) -> int:
    """The whole process's instructions under callgrind (the summary line of its output file)."""
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv], env=env,
                          cwd=str(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: callgrind {argv} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no summary in {out}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="rounds of bare interpreters")
    parser.add_argument("--cli-runs", type=int, default=20, help="rounds of CLI jobs (0: skip)")
    parser.add_argument("--bare-target", type=float, default=5.0)
    parser.add_argument("--cli-target", type=float, default=20.0)
    parser.add_argument("--instructions", type=int, default=2, help="callgrind runs of the CLI per variant")
    parser.add_argument("--instructions-target", type=float, default=8.0, help="percent over off")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    try:
        cache = str(work / "cache")
        manifest = str(REPO / "telemetry.yaml")
        bare = interleaved(
            {
                "off": clean_env(XDG_CACHE_HOME=cache),
                "AUTOINSTRUMENT=1": clean_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=manifest,
                                              XDG_CACHE_HOME=cache),
                "PUBLISHER_AUTOINSTRUMENT=1": clean_env(PUBLISHER_AUTOINSTRUMENT="1", XDG_CACHE_HOME=cache),
            },
            [sys.executable, "-c", BARE],
            args.runs,
            work,
        )
        result: Dict[str, object] = {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                                     "bare": summary(bare)}
        result["bare_heavy_modules"] = {
            "AUTOINSTRUMENT=1": heavy_modules(
                clean_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=manifest, XDG_CACHE_HOME=cache), work),
            "PUBLISHER_AUTOINSTRUMENT=1": heavy_modules(
                clean_env(PUBLISHER_AUTOINSTRUMENT="1", XDG_CACHE_HOME=cache), work),
        }
        if args.cli_runs:
            subprocess.run([str(BIN / "publisher-sample"), "--count", "20", str(work / "lib")], check=True,
                           stdout=subprocess.DEVNULL, env=clean_env())
            cli = interleaved(
                {
                    "off": clean_env(XDG_CACHE_HOME=cache),
                    "PUBLISHER_AUTOINSTRUMENT=1": clean_env(PUBLISHER_AUTOINSTRUMENT="1", XDG_CACHE_HOME=cache),
                },
                [str(BIN / "publisher"), "--config", str(work / "lib" / "publisher.ini"), "--dry-publish"],
                args.cli_runs,
                work,
            )
            result["cli"] = summary(cli)
        if args.instructions:
            if not (work / "lib").exists():
                subprocess.run([str(BIN / "publisher-sample"), "--count", "20", str(work / "lib")], check=True,
                               stdout=subprocess.DEVNULL, env=clean_env())
            # The same job every run: the image choice seeded (the workflow shuffles its candidates), the
            # hash seed fixed, a dry run (the ledger does not change), so the counts differ by the telemetry only.
            ini = str(work / "lib" / "publisher.ini")
            job = [sys.executable, "-c", "import random, sys; random.seed(20); "
                   f"sys.argv = ['publisher', '--config', {ini!r}, '--dry-publish']; "
                   "from publisher_v2.cli.app import main; sys.exit(main())"]
            counts: Dict[str, List[int]] = {"off": [], "on": []}
            envs = {"off": clean_env(XDG_CACHE_HOME=cache, PYTHONHASHSEED="0"),
                    "on": clean_env(PUBLISHER_AUTOINSTRUMENT="1", XDG_CACHE_HOME=cache, PYTHONHASHSEED="0")}
            for i in range(args.instructions):
                for name in (["off", "on"] if i % 2 == 0 else ["on", "off"]):
                    counts[name].append(instructions(job, envs[name], work, work / f"callgrind.{name}.{i}"))
            off_i, on_i = statistics.median(counts["off"]), statistics.median(counts["on"])
            result["cli_instructions"] = {"off": counts["off"], "on": counts["on"],
                                          "added_percent": round((on_i / off_i - 1) * 100, 2)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")

    failed = []
    for name in ("AUTOINSTRUMENT=1", "PUBLISHER_AUTOINSTRUMENT=1"):
        if result["bare"][name]["added_ms"] > args.bare_target:  # type: ignore[index]
            failed.append(f"bare interpreter with {name}: +{result['bare'][name]['added_ms']} ms")  # type: ignore[index]
    if "cli" in result and result["cli"]["PUBLISHER_AUTOINSTRUMENT=1"]["added_ms"] > args.cli_target:  # type: ignore[index]
        failed.append(f"CLI job: +{result['cli']['PUBLISHER_AUTOINSTRUMENT=1']['added_ms']} ms")  # type: ignore[index]
    for name, heavy in result["bare_heavy_modules"].items():  # type: ignore[union-attr]
        if heavy:
            failed.append(f"bare interpreter with {name} imported {heavy}")
    if "cli_instructions" in result:
        added = result["cli_instructions"]["added_percent"]  # type: ignore[index]
        if added > args.instructions_target:
            failed.append(f"CLI job instructions: +{added} %")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"Python {result['python']}, {result['cpus']} CPUs; wall ms per process (median, p10..p90); added = "
              "median of paired differences to off")
        for section in ("bare", "cli"):
            if section not in result:
                continue
            print(f"{section}:")
            for name, figures in result[section].items():  # type: ignore[union-attr]
                print(f"  {name:28s} {figures['median_ms']:8.1f}  ({figures['p10_ms']}..{figures['p90_ms']})"
                      f"   added {figures['added_ms']:+.1f} ({figures['added_p10_ms']}..{figures['added_p90_ms']})")
        print(f"bare interpreter, heavy modules imported: {result['bare_heavy_modules']}")
        if "cli_instructions" in result:
            ci = result["cli_instructions"]
            print(f"CLI job instructions (callgrind): off {ci['off']}  on {ci['on']}"  # type: ignore[index]
                  f"  added {ci['added_percent']:+.2f} %")  # type: ignore[index]
    for line in failed:
        print(f"FAIL: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
