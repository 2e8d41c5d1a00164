"""The built-in transforms (filter, rename, drop, mask, cast) and the expression language.

Each transform module registers itself when imported, and the distribution names it in the
``omconnect.transforms`` entry-point group, as a third-party transform would be; importing
this package registers none of them. Like a connector package, it imports only
``omconnect.connectors.api``, ``omconnect.codecs`` and ``omconnect.schemas``.
"""

__all__: list[str] = []
