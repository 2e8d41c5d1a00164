"""``python -m omconnect.runtime.docs [--out DIR] [--check]``: regenerate the connector pages.

Run from the repository root. ``--check`` writes nothing and exits 1 when a page is missing,
stale or orphaned, for CI.
"""

from __future__ import annotations

import argparse
import sys

from omconnect.runtime.docs.connector_pages import stale_connector_pages, write_connector_pages

DEFAULT_DIRECTORY = "docs/connectors"


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or with ``--check`` verify) the pages; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m omconnect.runtime.docs", description=__doc__)
    parser.add_argument("--out", default=DEFAULT_DIRECTORY, help="the pages' directory")
    parser.add_argument("--check", action="store_true", help="only report stale pages")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_connector_pages(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for path in write_connector_pages(args.out):
        print(path)
    for problem in stale_connector_pages(args.out):
        # Only orphans can remain after writing; deleting them is left to a person.
        print(problem, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
