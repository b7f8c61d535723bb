"""Summarise a py-spy collapsed-stack profile (``py-spy record --format raw``).

    python bench/profile_summary.py bench/results/profile-ours-broadcast.txt [--thread MainThread] [--top 40]

Prints, for the chosen thread, the share of samples each function is on the stack
(inclusive) and at the top (self), so you can see where the event loop spends time.
"""

import argparse
import re
from collections import Counter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--thread", default="", help="substring of the thread name, if recorded with py-spy --threads")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--idle", action="store_true", help="keep samples where the thread was idle")
    args = ap.parse_args()
    inclusive, self_, total = Counter(), Counter(), 0
    for line in open(args.path):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        if frames[0].startswith("thread ("):  # recorded with --threads
            if args.thread and args.thread not in frames[0]:
                continue
            frames = frames[1:]
        frames = [re.sub(r":\d+\)$", ")", f) for f in frames]
        if not args.idle and frames and ("select (selectors.py" in frames[-1] or "epoll" in frames[-1]):
            continue
        n = int(count)
        total += n
        for f in set(frames):
            inclusive[f] += n
        if frames:
            self_[frames[-1]] += n
    print(f"{total} busy samples in threads matching {args.thread!r}")
    print("\ninclusive (share of busy samples with the function on the stack):")
    for f, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    print("\nself (share of busy samples at the top of the stack):")
    for f, n in self_.most_common(args.top // 2):
        print(f"  {100 * n / total:5.1f}%  {f}")


if __name__ == "__main__":
    main()
