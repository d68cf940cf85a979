#!/usr/bin/env python
"""A small flame graph SVG from py-spy's raw (collapsed) stacks, cut to the part of the program that matters.

py-spy's own SVG holds every stack it sampled (the imports, the harness that replays a day), 0.5-1 MB a graph. This
keeps the stacks through one frame (``--root``, e.g. ``decide_batch``: the batch route), drops frames narrower than
``--min-share`` of it, and writes a plain SVG (each frame's name, file, samples and share in its tooltip):

    py-spy record -r 200 -f raw -o /tmp/route.txt -- .venv/bin/python scripts/profile_batch.py --batches 150
    .venv/bin/python scripts/flame_svg.py /tmp/route.txt --root decide_batch -o results/perf/FILE.svg
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import zlib
from pathlib import Path

WIDTH, ROW = 1200.0, 17


def load(path: Path, roots: list[str]) -> dict[tuple[str, ...], int]:
    """Samples per stack, each cut to start at its first frame whose function is one of ``roots``."""
    stacks: dict[tuple[str, ...], int] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [re.sub(r" \((.*?):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        at = next((i for i, f in enumerate(frames) if f.split(" (")[0] in roots), None)
        if at is not None:
            key = tuple(frames[at:])
            stacks[key] = stacks.get(key, 0) + int(count)
    return stacks


def render(stacks: dict[tuple[str, ...], int], title: str, min_share: float) -> str:
    total = sum(stacks.values())
    tree: dict = {}
    for frames, n in stacks.items():
        node = tree
        for f in frames:
            entry = node.setdefault(f, [0, {}])
            entry[0] += n
            node = entry[1]

    def drawn_depth(node: dict) -> int:  # the rows of the frames wide enough to draw
        wide = [children for n, children in node.values() if n / total >= min_share]
        return 1 + max(drawn_depth(c) for c in wide) if wide else 0

    depth = drawn_depth(tree)
    height = (depth + 2) * ROW
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0f}" height="{height}" font-family="monospace" '
        'font-size="11">',
        f'<text x="4" y="12">{html.escape(title)} ({total} samples)</text>',
    ]

    def draw(node: dict, x: float, level: int) -> None:
        for name, (n, children) in sorted(node.items(), key=lambda kv: -kv[1][0]):
            share = n / total
            if share < min_share:
                continue
            w = WIDTH * share
            y = height - (level + 1) * ROW
            hue = 20 + zlib.crc32(name.split(" (")[-1].encode()) % 40  # by file, the same in every run
            label = name if len(name) * 6.6 < w else name[: max(int(w / 6.6) - 2, 0)] + ".." if w > 20 else ""
            tip = html.escape(f"{name}: {n} samples, {100 * share:.1f} %")
            out.append(
                f'<g><title>{tip}</title><rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{ROW - 1}" '
                f'fill="hsl({hue},85%,60%)"/><text x="{x + 2:.1f}" y="{y + 12}">{html.escape(label)}</text></g>'
            )
            draw(children, x, level + 1)
            x += w

    draw(tree, 0.0, 0)
    out.append("</svg>")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw", type=Path, help="py-spy record -f raw output")
    ap.add_argument("--root", required=True, help="Functions whose stacks are kept (from them up), comma-separated.")
    ap.add_argument("--min-share", type=float, default=0.005, help="Drop frames narrower than this share.")
    ap.add_argument("--title", default=None)
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args()
    if not args.raw.is_file():
        sys.exit(f"error: no file {args.raw}")
    stacks = load(args.raw, args.root.split(","))
    if not stacks:
        print(f"error: no sampled stack passes through {args.root!r}", file=sys.stderr)
        sys.exit(2)
    args.out.write_text(render(stacks, args.title or f"{args.raw.name}: {args.root}", args.min_share))
    print(f"{args.out}: {sum(stacks.values())} samples through {args.root}, {args.out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
