#!/usr/bin/env python3
"""Summarises CubeCL's profiling log (profiling level "basic"): the last per-kernel table, which
CubeCL writes at each device sync, i.e. the bench's last timed run.

  python3 tools/device/profile_summary.py profile.log [--top 30]

Prints the kernels by GPU time, then the same time by kernel family (the name without its
hash), each with its share of the run. Kernel names contain '|', so a row is read from the right:
name | duration | count | ratio.
"""

import argparse
import re
import sys
from collections import defaultdict

UNITS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def ms(text):
    m = re.fullmatch(r"([0-9.]+)(ns|µs|us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def last_table(lines):
    """Rows (name, ms, count) of the last table; None when the log has none."""
    starts = [i for i, l in enumerate(lines) if re.match(r"\|\s*Name\s*\|", l)]
    if not starts:
        return None
    rows = []
    for line in lines[starts[-1] + 1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4:
            continue  # the table's rule lines
        name, duration, count = short(" | ".join(cells[:-3])), cells[-3], cells[-2]
        if name == "Total":
            continue
        try:
            rows.append((name, ms(duration), int(count)))
        except ValueError:
            continue
    return rows


def short(name):
    """The name without the launch-argument parts every matmul shares (TensorArgs, DynamicSize...),
    which leave the algorithm's parts (family, partitioner, loaders, tiling orders)."""
    noise = re.compile(r"^(TensorArgs|DynamicScalar|DynamicSize|__\w+|\(\))$")
    return " | ".join(p for p in name.split(" | ") if not noise.match(p))


def clip(name, width=150):
    return name if len(name) <= width else name[: width // 3] + " … " + name[-(2 * width // 3):]


def family(name):
    """The kernel's name without the hash CubeCL appends to each compiled variant."""
    return re.sub(r"_[0-9a-f]{8}\b", "", name).strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    with open(args.log, encoding="utf-8", errors="replace") as f:
        rows = last_table(f.read().splitlines())
    if not rows:
        print(f"{args.log}: no profiling table (was the profiling logger at level basic?)")
        return 1
    total = sum(r[1] for r in rows)
    print(f"last run: {total:.3f} ms of GPU time in {sum(r[2] for r in rows)} launches, {len(rows)} kernels")
    print(f"{'ms':>10} {'share':>6} {'calls':>6}  kernel")
    for name, t, n in sorted(rows, key=lambda r: -r[1])[: args.top]:
        print(f"{t:10.3f} {100 * t / total:5.1f}% {n:6d}  {clip(name)}")
    groups = defaultdict(lambda: [0.0, 0])
    for name, t, n in rows:
        g = groups[family(name)]
        g[0] += t
        g[1] += n
    print(f"\n{'ms':>10} {'share':>6} {'calls':>6}  family")
    for name, (t, n) in sorted(groups.items(), key=lambda kv: -kv[1][0])[: args.top]:
        print(f"{t:10.3f} {100 * t / total:5.1f}% {n:6d}  {clip(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
