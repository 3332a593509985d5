"""Grounding: whether each claim of an answer is supported by the passages it cites.

Framework-free (numpy and the router's encoder protocol): :mod:`text` cuts an answer
into claims with offsets, :mod:`facts` finds the numbers and names a claim states,
:mod:`checker` judges each claim and returns a :class:`Grounding` for the audit event
and the API. How it judges, its data and its figures: docs/grounding.md.
"""

from backend.grounding.checker import Grounding, GroundingChecker, Unsupported

__all__ = ["Grounding", "GroundingChecker", "Unsupported"]
