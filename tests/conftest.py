"""What every test shares: the ``omconnect`` processes the tests start log plain text lines.

Off a terminal ``omconnect`` logs JSON lines (``--log-format auto``); the tests read and quote
the text form of messages, so ``OMCONNECT_LOG_FORMAT=text`` is set for every process they
start. ``tests/e2e/test_json_logs.py`` runs with ``auto`` and checks the JSON lines.
"""

from __future__ import annotations

import os

os.environ["OMCONNECT_LOG_FORMAT"] = "text"
