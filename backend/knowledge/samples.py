"""The sample knowledge shipped in retrieval/samples/ and the groups it is ingested with.

Each domain folder's top level is public; its ``restricted/`` folder is ingested for
one group, so the demo shows ACL filtering: only members of that group get those
passages (``expertgate keys create --group legal-team ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retrieval.sources import SAMPLES_DIR


@dataclass(frozen=True, slots=True)
class SampleSet:
    domain: str
    restricted_group: str

    @property
    def folder(self) -> Path:
        return SAMPLES_DIR / self.domain


SAMPLE_SETS = (
    SampleSet("support", "support-leads"),
    SampleSet("legal", "legal-team"),
    SampleSet("code", "eng-oncall"),
)


__all__ = ["SAMPLES_DIR", "SAMPLE_SETS", "SampleSet"]
