"""The input safety check: is a text trying to make the assistant do what it must not?

Three categories, each a calibrated score in [0, 1]:

- ``injection``: replacing or overriding the assistant's instructions (directly, or hidden
  in pasted text and documents);
- ``jailbreak``: getting the assistant out of its rules (personas, fiction framings,
  "developer mode", routing abuse);
- ``extraction``: getting what it must not show (its system prompt, other users' data,
  restricted documents, secrets).

The same shape as the gate (:mod:`router.gate`): a small network over the sentence
embedding the request already has, plus hashed n-grams and a few hand-written rule
features (:mod:`router.safety.rules`), trained with torch (:mod:`router.safety.train`)
and served in numpy (:mod:`router.safety.model`). The data is ours, written to
``data/PLAN.md``.
"""

from router.safety.model import CATEGORIES, SafetyModel, SafetyScores

__all__ = ["CATEGORIES", "SafetyModel", "SafetyScores"]
