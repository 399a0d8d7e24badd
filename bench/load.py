#!/usr/bin/env python3
"""Parse time of a FER2013 file: first (cold cache) and cached. Ends with one JSON line.

    python bench/load.py ../shared/fer2013/train.csv.xz
"""
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    from fer import cli

    parser = cli.parser(__doc__)
    parser.add_argument("path", nargs="?", default="../shared/fer2013/train.csv.xz")
    parser.add_argument("--repeat", type=cli.POSITIVE_INT, default=3, help="best of N for each measurement")
    args = parser.parse_args()
    from fer import data  # imports Keras too, before any timing

    def timed(cache):
        started = time.perf_counter()
        faces = data.load_faces(args.path, cache=cache)
        return time.perf_counter() - started, faces

    def measure():
        with tempfile.TemporaryDirectory() as folder:
            os.environ["FER_CACHE"] = folder
            first = min(timed(cache=False)[0] for _ in range(args.repeat))
            _, faces = timed(cache=True)  # fills the cache
            cached = min(timed(cache=True)[0] for _ in range(args.repeat))
        return first, cached, faces

    first, cached, faces = measure()
    size = Path(args.path).stat().st_size
    rows = [("file", args.path), ("rows", f"{len(faces):,}"), ("size on disk", f"{size / 2**20:.1f} MiB"),
            ("first parse (best of %d)" % args.repeat, f"{first:.2f} s"),
            ("cached load (best of %d)" % args.repeat, f"{cached:.3f} s"), ("machine", platform.processor() or
                                                                              platform.machine())]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(json.dumps({"bench": "load", "file": args.path, "rows": len(faces), "first_s": round(first, 3),
                      "cached_s": round(cached, 4), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
