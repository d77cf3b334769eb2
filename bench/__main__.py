"""``python -m bench [NAME ...]``: run the named benchmarks (default: all that need no server);
``python -m bench NAME --option ...``: one benchmark with its own options (``soak --minutes 10``)."""

import importlib
import sys

OFFLINE = ("synth", "preprocess")
args = sys.argv[1:]
if len(args) > 1 and args[1].startswith("-"):
    print(f"\n=== bench.{args[0]} ===", flush=True)
    importlib.import_module(f"bench.{args[0]}").main(args[1:])
    sys.exit(0)
for name in args or OFFLINE:
    print(f"\n=== bench.{name} ===", flush=True)
    module = importlib.import_module(f"bench.{name}")
    module.main([]) if name == "soak" else module.main()
