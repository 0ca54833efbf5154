"""``python -m api.cli``: the ``kvdb`` command, for environments without the script."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())
