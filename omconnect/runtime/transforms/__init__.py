"""The built-in transforms (filter, rename, drop, mask, cast) and what they share.

Each transform module registers itself when imported; the runtime finds them through the
``omconnect.transforms`` entry-point group. Importing this package registers none of them.
"""

from omconnect.runtime.transforms.row_errors import TransformRowErrors

__all__ = ["TransformRowErrors"]
