"""Access control for chunks: the one visibility rule and its per-row table.

A chunk carries the groups of its document. Empty groups mean everyone may see it;
otherwise a caller must share at least one group. The rule lives in :func:`visible`
and nowhere else; :class:`AclTable` evaluates it for every row of an index at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BoolMask = npt.NDArray[np.bool_]


def visible(doc_groups: frozenset[str], caller_groups: frozenset[str]) -> bool:
    """True when a caller in ``caller_groups`` may see a chunk restricted to ``doc_groups``."""
    return not doc_groups or not doc_groups.isdisjoint(caller_groups)


@dataclass(frozen=True, slots=True, eq=False)
class RowFilter:
    """The rows one caller may see, in the shapes each retriever wants (built once)."""

    mask: BoolMask  # True = visible
    weights: npt.NDArray[np.float32]  # 1.0 / 0.0 per row (BM25 weight mask)
    bitmap: npt.NDArray[np.uint8]  # the mask packed little-endian (FAISS IDSelectorBitmap)
    visible: int

    @property
    def fraction(self) -> float:
        return self.visible / self.mask.size if self.mask.size else 0.0


class AclTable:
    """Row -> group set, stored as a code per row into the distinct sets.

    Indexes hold a handful of distinct group sets (often one: public), so filters are
    computed per distinct set and cached per caller group set (searches run on worker
    threads: the cache is locked).
    """

    _CACHE_SIZE = 256

    def __init__(self, sets: Sequence[frozenset[str]], codes: npt.NDArray[np.int32]) -> None:
        if codes.size and (codes.min() < 0 or codes.max() >= len(sets)):
            raise ValueError("ACL codes must index into the group sets")
        self.sets = tuple(sets)
        self.codes = codes.astype(np.int32, copy=False)
        self._filters: OrderedDict[frozenset[str], RowFilter | None] = OrderedDict()
        self._lock = threading.Lock()

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

    def filter(self, caller_groups: frozenset[str]) -> RowFilter | None:
        """The rows a caller in ``caller_groups`` may see, or None when they may see all."""
        key = frozenset(caller_groups)
        with self._lock:
            if key in self._filters:
                self._filters.move_to_end(key)
                return self._filters[key]
        allowed = [i for i, groups in enumerate(self.sets) if visible(groups, key)]
        row_filter = None
        if len(allowed) < len(self.sets):
            mask = np.isin(self.codes, np.asarray(allowed, dtype=np.int32))
            row_filter = RowFilter(
                mask=mask,
                weights=mask.astype(np.float32),
                bitmap=np.packbits(mask, bitorder="little"),
                visible=int(mask.sum()),
            )
        with self._lock:
            self._filters[key] = row_filter
            if len(self._filters) > self._CACHE_SIZE:
                self._filters.popitem(last=False)
        return row_filter
