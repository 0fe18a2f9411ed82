"""Where a worker spends its time, from py-spy's collapsed stacks.

    CX_BENCH_PROFILE=60 python bench/suite.py --only cxstream   # any section
    python bench/profile_top.py .cx-run/bench/<app>-<port>/profile.txt [N]

Prints the N functions with the most samples on the stack (inclusive) and
the N with the most samples at the top of the stack (self), as shares of all
samples taken while the process ran Python code.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def frame_name(frame: str) -> str:
    """'func (path/to/module.py:12)' -> 'func (module.py)'."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


def main() -> None:
    path = Path(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    print(f"{total:,} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title}:")
        for name, n in counter.most_common(top):
            print(f"  {100 * n / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
