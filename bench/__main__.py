"""``python -m bench [NAME ...]``: run the named benchmarks (default: all that need no server).

``python -m bench NAME --option value``: one benchmark with its own options (``--help``)."""

import importlib
import inspect
import sys

OFFLINE = ("synth", "preprocess")
args = sys.argv[1:]
if any(a.startswith("-") for a in args):
    runs = [(args[0], args[1:])]
else:
    runs = [(name, []) for name in (args or OFFLINE)]
for name, options in runs:
    print(f"\n=== bench.{name} ===", flush=True)
    main = importlib.import_module(f"bench.{name}").main
    main(options) if inspect.signature(main).parameters else main()
