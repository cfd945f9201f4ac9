"""Summarise a ``py-spy record --format raw`` file (collapsed stacks): where the samples went.

    python benchmarks/profile_summary.py prof/login.txt [--top 30]

Frames are grouped per function (line numbers dropped); "self" counts samples where the function
was running, "total" samples where it was anywhere on the stack.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_TRIM = ("site-packages/", "/work/main/", "lib/python3.11/")


def short_path(path: str) -> str:
    """Drop the part of a path that only says where Python or the checkout lives."""
    for marker in _TRIM:
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def function_of(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{short_path(match['file'])}:{match['func']}"


def parse(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        head, _, count = line.rpartition(" ")
        if head and count.isdigit():
            stacks.append((head.split(";"), int(count)))
    return stacks


def summarize(text: str, top: int = 25) -> str:
    stacks = parse(text)
    total = sum(n for _, n in stacks) or 1
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for frames, n in stacks:
        if frames and frames[0].startswith(("thread ", "process ")):
            threads[frames[0]] += n
            frames = frames[1:]
        funcs = [function_of(f) for f in frames]
        if funcs:
            own[funcs[-1]] += n
        for f in set(funcs):
            anywhere[f] += n
    out = [f"{total} samples"]
    out += [f"  {n:7d} {100 * n / total:5.1f}%  {t}" for t, n in threads.most_common()]
    out.append(f"\nTop {top} by self time:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out.append(f"\nTop {top} by total time (on the stack):")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in anywhere.most_common(top)]
    ours = Counter({f: n for f, n in anywhere.items() if f.startswith("msnp6/")})
    out.append(f"\nTop {top} msnp6 functions by total time:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in ours.most_common(top)]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=Path)
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    print(summarize(args.file.read_text(), args.top), end="")


if __name__ == "__main__":
    main()
