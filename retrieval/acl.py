"""Access control for chunks: the one visibility rule and its per-row table.

A chunk carries the groups of its document. Empty groups mean everyone may see it;
otherwise a caller must share at least one group. The rule lives in :func:`visible`
and nowhere else; :class:`AclTable` evaluates it for every row of an index at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

BoolMask = npt.NDArray[np.bool_]


def visible(doc_groups: frozenset[str], caller_groups: frozenset[str]) -> bool:
    """True when a caller in ``caller_groups`` may see a chunk restricted to ``doc_groups``."""
    return not doc_groups or not doc_groups.isdisjoint(caller_groups)


class AclTable:
    """Row -> group set, stored as a code per row into the distinct sets.

    Indexes hold a handful of distinct group sets (often one: public), so masks are
    computed per distinct set and cached per caller group set.
    """

    _CACHE_SIZE = 256

    def __init__(self, sets: Sequence[frozenset[str]], codes: npt.NDArray[np.int32]) -> None:
        if codes.size and (codes.min() < 0 or codes.max() >= len(sets)):
            raise ValueError("ACL codes must index into the group sets")
        self.sets = tuple(sets)
        self.codes = codes.astype(np.int32, copy=False)
        self._masks: OrderedDict[frozenset[str], BoolMask | None] = OrderedDict()
        self._bitmaps: dict[frozenset[str], npt.NDArray[np.uint8]] = {}
        self._lock = threading.Lock()  # searches run on worker threads

    @classmethod
    def from_rows(cls, row_groups: Sequence[frozenset[str]]) -> AclTable:
        index: dict[frozenset[str], int] = {}
        codes = np.empty(len(row_groups), dtype=np.int32)
        for row, groups in enumerate(row_groups):
            codes[row] = index.setdefault(groups, len(index))
        return cls(list(index), codes)

    def __len__(self) -> int:
        return int(self.codes.size)

    def groups_of(self, row: int) -> frozenset[str]:
        return self.sets[int(self.codes[row])]

    def allows(self, row: int, caller_groups: frozenset[str]) -> bool:
        return visible(self.groups_of(row), caller_groups)

    def mask(self, caller_groups: frozenset[str]) -> BoolMask | None:
        """Rows the caller may see as a boolean array, or None when they may see all."""
        key = frozenset(caller_groups)
        with self._lock:
            if key in self._masks:
                self._masks.move_to_end(key)
                return self._masks[key]
        allowed = [i for i, groups in enumerate(self.sets) if visible(groups, key)]
        everything = len(allowed) == len(self.sets)
        mask = None if everything else np.isin(self.codes, np.asarray(allowed, dtype=np.int32))
        with self._lock:
            self._masks[key] = mask
            if len(self._masks) > self._CACHE_SIZE:
                old, _ = self._masks.popitem(last=False)
                self._bitmaps.pop(old, None)
        return mask

    def bitmap(self, caller_groups: frozenset[str]) -> npt.NDArray[np.uint8] | None:
        """The mask packed little-endian (FAISS IDSelectorBitmap layout), or None for all."""
        key = frozenset(caller_groups)
        mask = self.mask(key)
        if mask is None:
            return None
        with self._lock:
            bitmap = self._bitmaps.get(key)
            if bitmap is None:
                bitmap = self._bitmaps[key] = np.packbits(mask, bitorder="little")
        return bitmap
