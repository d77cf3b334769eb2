"""Shared test setup: make ``tests/`` importable (corpus builders) and keep BentoML quiet."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
