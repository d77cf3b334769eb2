"""``python -m bench [NAME ...]``: run the named benchmarks (default: all that need no server)."""

import importlib
import sys

OFFLINE = ("synth", "preprocess")
names = sys.argv[1:] or OFFLINE
for name in names:
    print(f"\n=== bench.{name} ===", flush=True)
    importlib.import_module(f"bench.{name}").main()
