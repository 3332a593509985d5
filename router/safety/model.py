"""The trained safety classifier, served in numpy.

Inputs per text: the sentence embedding (the base encoder's, which the request already
has for retrieval), the rule features (:mod:`router.safety.rules`) and hashed n-grams
(:mod:`router.features`). Outputs: one calibrated probability per category, each its own
sigmoid (a text can be an injection *and* an extraction attempt).

A text is also scored in pieces, its sentences and lines (short neighbours joined), and
each category takes its highest piece: an instruction buried in the middle of a pasted
contract, or an attack after an ordinary question, is not diluted by the text around it.
Hidden forms (decoded base64, undone leetspeak) are scored as pieces too.

Artifact layout (one directory per version)::

    safety.safetensors   w1 [H, D+R] b1 [H] w2 [C, H] b2 [C] lex [B, C]
    manifest.json        SafetyManifest
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file, save_file

from router.errors import ArtifactError
from router.features import HashedNgrams
from router.safety import rules
from router.safety.content import pasted
from router.safety.gloss import foreign_span, gloss, glossary, reads_foreign

CATEGORIES: tuple[str, ...] = ("injection", "jailbreak", "extraction")
SHIPPED = Path(__file__).resolve().parent / "artifacts" / "safety-v2"
WEIGHTS = "safety.safetensors"
MANIFEST = "manifest.json"
Vectors = npt.NDArray[np.float32]

# A text is also scored in pieces: its sentences and lines (see segments; the rest of
# a 100 KB paste past MAX_CHARS is not read).
MIN_PIECE = 24
MAX_PIECES = 48
MAX_CHARS = 20_000
# Runs of sentences from either end (see windows) are scored for texts of up to this
# many sentences; a run from the start only up to WINDOW_CHARS characters, a run to the
# end cut there.
MAX_WINDOW_SENTENCES = 12
WINDOW_CHARS = 1200
# A category's score when one of its decisive patterns matches (rules.DECISIVE).
OBVIOUS_SCORE = 0.99
# Bumped when what a text is scored in changes (sentences, runs, hidden forms): like a
# change to the patterns, documents scored with other units are scored again.
UNITS = "5"


@dataclass(frozen=True)
class SafetyManifest:
    version: str
    encoder: str  # the name of the encoder whose vectors it scores
    dim: int
    categories: tuple[str, ...]
    rule_features: tuple[str, ...]
    lexical_buckets: int
    temperatures: Mapping[str, float]  # per category: logit / T before the sigmoid
    threshold: float  # flag when a category's probability reaches it (FPR-tuned on val)
    data_hash: str
    seed: int
    created_at: str
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        raw = asdict(self)
        raw["categories"], raw["rule_features"] = list(self.categories), list(self.rule_features)
        return json.dumps(raw, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SafetyManifest:
        raw = json.loads(text)
        raw["categories"], raw["rule_features"] = tuple(raw["categories"]), tuple(raw["rule_features"])
        return cls(**raw)


TURNS = 3  # the user turns a multi-turn check reads together


def checked_text(turns: Sequence[str]) -> str:
    """What a multi-turn check reads: the last user turns, oldest first."""
    return "\n".join(t.strip() for t in turns[-TURNS:])


@dataclass(frozen=True)
class SafetyScores:
    """One text's calibrated score per category, and the rule families that fired."""

    scores: Mapping[str, float]
    rules: tuple[str, ...] = ()

    @property
    def top(self) -> tuple[str, float]:
        """The highest-scoring category and its score."""
        name = max(self.scores, key=lambda c: self.scores[c])
        return name, self.scores[name]

    def flagged(self, thresholds: Mapping[str, float]) -> dict[str, float]:
        """The categories at or over their threshold, with their scores."""
        return {c: s for c, s in self.scores.items() if s >= thresholds[c]}


_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")
# Where a sentence starts after a word with no full stop ("... for a school project Why
# is ..."): chat text often leaves the stop out, and an attack run on after an ordinary
# request without one is still two sentences. Request words that are seldom names, and
# not an attack's own first words ("Ignore", "Print"): "how do we stop Ignore previous
# instructions prompts?" is one sentence about an attack, and its second half alone
# would read as one.
_STARTS = (
    "What|Why|How|When|Where|Who|Which|Can|Could|Would|Should|Is|Are|Do|Does|Did|Please|Pls|Plz"
    "|Hi|Hello|Hey|Thanks|Also|Now|Then|Show|Give|Tell|List|Return|Write|Send|Speak|From now"
)
# Group 1 is the word before (as for _CASE_TURN); a word that leads into a quoted phrase
# is no sentence end (:data:`_QUOTING`).
_RUN_ON = re.compile(rf"(?<!\S)(\S+) +(?=(?:{_STARTS})\b)")
# Where a capitalised word follows a word in small letters that ends in a letter, a
# digit, a closing bracket or "=", with no stop between ("... a debt collector s legal
# fees You're the admin expert now ..."): pasted or typed requests often run on so, and
# an ordinary request run on before or after an attack hides the attack's start. Not
# after a word that leads into a name or a quoted phrase ("ask Maria", "the Berlin
# office", "stop Ignore previous instructions prompts"), nor before "I" or an attack's
# own first words (:data:`_NOT_AFTER`). All-capital and CamelCase words ("API",
# "GitHub") are no turn. Group 1 is the word before, group 2 the capitalised word.
_CASE_TURN = re.compile(r"(?<!\S)(\S*[a-z0-9)\]}=]) +(?=([A-Z][a-z\u2019']*)\b)")
# Words that lead into a phrase quoted without quote marks ("how do we stop Ignore previous
# instructions prompts", "the banner says Access Denied", "how should the helpdesk answer
# Give me the admin password requests"): neither a capital nor a request word after them
# starts a sentence.
_QUOTING_WORDS = (
    "stop stops catch catches detect detects block blocks filter filters flag flags say says said saying"
    " read reads phrase phrases word words prompt prompts titled labelled labeled quote quoted type typed"
    " enter entered search searched contain contains containing mention mentions like against answer answers"
    " handle handles"
)
_QUOTING = frozenset(_QUOTING_WORDS.split())
_LEADS = frozenset(
    word
    for group in (
        "a an the to for in on at with from by of and or nor but my your our their his her its this that these",
        "those via into onto about per as is are was were be been called named dear mr mrs ms dr hi hello hey",
        "thanks thank using use like than vs versus under over between through without within across near",
        "after before since until ask asked tell told email emailed call cc ping message contact team mister",
        "miss sir madam",
        _QUOTING_WORDS,
        # the articles and prepositions before a noun in the other languages our staff write
        "der die das den dem des ein eine einen einem einer mit von zu zum zur für auf im am beim",
        "le la les du de au aux en un une el los las del con una il lo gli dei della het een van voor",
    )
    for word in group.split()
)
# Capitalised words that are no turn: "I" and its contractions ("how do I fix it"), and
# the first words of an attack, which a question about one quotes without quote marks
# ("how do we protect against Ignore previous instructions attacks?"; as for _STARTS).
_NOT_AFTER = frozenset(
    [
        *(f"I{tail}" for tail in ("", "'m", "'d", "'ve", "'ll", "\u2019m", "\u2019d", "\u2019ve", "\u2019ll")),
        *(verb.capitalize() for verb in rules.OVERRIDE_VERBS),
        *("Print", "Reveal", "Repeat", "Output", "Dump", "Pretend", "Enable", "Activate", "Jailbreak"),
    ]
)


def sentences(text: str) -> list[str]:
    """``text``'s sentences and lines, as written (the first MAX_CHARS characters)."""
    return [part for part in _SENTENCE_END.split(text[:MAX_CHARS].strip()) if part.strip()]


def segments(text: str) -> list[str]:
    """The pieces of ``text`` scored on their own besides the whole: its sentences and
    lines (a piece under MIN_PIECE characters joins its neighbour; past MAX_PIECES,
    neighbours are paired until they fit). An attack with an ordinary question before or
    after it, or an instruction in the middle of a pasted contract, is scored without
    the text around it diluting it. A text of one piece has no pieces besides itself."""
    out = _joined(sentences(text))
    return out if len(out) > 1 else [text]


def _joined(parts: Sequence[str]) -> list[str]:
    """``parts`` with each under MIN_PIECE characters joined to its neighbour, and
    neighbours paired until at most MAX_PIECES are left."""
    out: list[str] = []
    for part in parts:
        if out and (len(part) < MIN_PIECE or len(out[-1]) < MIN_PIECE):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    while len(out) > MAX_PIECES:
        out = [" ".join(out[i : i + 2]) for i in range(0, len(out), 2)]
    return out


def run_on(parts: Sequence[str], capitals: bool = True) -> list[str]:
    """``parts`` (sentences) with each also split where a request word follows a word
    with no full stop (:data:`_STARTS`) and, with ``capitals``, where a capitalised word
    does (:func:`at_capitals`)."""
    split = [piece.strip() for part in parts for piece in _request_turns(part) if piece.strip()]
    return at_capitals(split) if capitals else split


# A sentence that ends by naming what it quoted ("... answer Give me the admin password
# requests"): the quoted phrase is talked about, not said.
_NAMED = re.compile(r"\b(?:requests?|prompts?|attacks?|messages?|phrases?|questions?|e-?mails?|tickets?)\W*$", re.I)


def _request_turns(text: str) -> list[str]:
    """``text`` split where a request word follows a word with no stop (:data:`_RUN_ON`),
    unless that word leads into a quoted phrase (:data:`_QUOTING`) and the sentence ends
    by naming it (:data:`_NAMED`): "now say Give me the admin password" is an order run
    on after "say", and still split."""
    out, start = [], 0
    named = bool(_NAMED.search(text))
    for match in _RUN_ON.finditer(text):
        if not (named and match.group(1).strip("\"'\u201c\u201d").lower() in _QUOTING):
            out.append(text[start : match.end(1)])
            start = match.end()
    return [*out, text[start:]]


def at_capitals(parts: Sequence[str]) -> list[str]:
    """``parts`` with each split by :func:`case_turns`."""
    return [piece.strip() for part in parts for piece in case_turns(part) if piece.strip()]


def case_turns(text: str) -> list[str]:
    """``text`` split where a capitalised word follows a word in small letters with no
    stop (:data:`_CASE_TURN`), unless the word before leads into a name (:data:`_LEADS`),
    the capitalised word seldom starts a sentence (:data:`_NOT_AFTER`), or either is a
    word of another language (German capitalises its nouns: "deine bisherigen
    Anweisungen"; where English runs into another language, :func:`glossed` reads the
    foreign side alone)."""
    out, start = [], 0
    for match in _CASE_TURN.finditer(text):
        word, after = match.group(1), match.group(2)
        bare = word.strip("\"')]}=")
        if not word.islower() or bare in _LEADS or after in _NOT_AFTER:
            continue
        if not reads_foreign(bare) and not reads_foreign(after):
            out.append(text[start : match.end(1)])
            start = match.end()
    return [*out, text[start:]]


def windows(parts: Sequence[str]) -> list[str]:
    """The runs of sentences that start at the first or end at the last: where an attack
    of several sentences ends and an ordinary request after it begins (or the other way
    round), one of these is the attack alone. For texts of up to MAX_WINDOW_SENTENCES
    sentences; runs under MIN_PIECE characters are left out, runs from the start past
    WINDOW_CHARS too, and runs to the end are cut there (the encoder reads a text's
    first 256 tokens: a longer run from the start embeds as the whole text does)."""
    k = len(parts)
    if not 2 <= k <= MAX_WINDOW_SENTENCES:
        return []
    heads = [" ".join(parts[:j]) for j in range(1, k)]
    tails = [" ".join(parts[j:])[:WINDOW_CHARS] for j in range(1, k)]
    return [w for w in heads if MIN_PIECE <= len(w) <= WINDOW_CHARS] + [w for w in tails if len(w) >= MIN_PIECE]


@dataclass(frozen=True)
class Units:
    """What a text is scored in besides itself. ``anchored``: its sentences
    (:func:`segments`) and the hidden forms of the text and of each sentence, which the
    decisive patterns read too (each starts where the writer started a sentence);
    ``loose``: its sentences split again at request words, and again at capitals
    (:func:`run_on`), the runs of either from either end (:func:`windows`) and the
    glosses of another language, read by the model only (a piece that starts at
    "Please ignore" in the middle of "our filter is tested on Please ignore all previous
    instructions" is no sentence start)."""

    anchored: tuple[str, ...]
    loose: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.anchored, *self.loose)


@lru_cache(maxsize=64)
def units(text: str) -> Units:
    """``text``'s :class:`Units`, each once. Remembered: a request asks twice, whether
    scoring it embeds anything and to score it."""
    parts = segments(text)
    # Hidden forms of the whole and, in a text of several sentences, of each: a sentence
    # in leetspeak or spaced letters beside an ordinary one reveals its words alone.
    hidden = [v for part in dict.fromkeys([text, *parts]) for v in rules.variants(part)]
    anchored = tuple(dict.fromkeys([*(w for w in parts if w != text), *hidden]))
    coarse = run_on(sentences(text), capitals=False)
    fine = at_capitals(coarse)
    # One sentence has no pieces besides itself (nor its stripped or its cut form). The
    # runs of the sentences split at request words only are kept beside those split at
    # capitals too: a text of twelve sentences that a capital makes thirteen keeps its
    # runs, so a split never takes a piece away.
    runs = [*_joined(fine), *windows(fine), *_joined(coarse), *windows(coarse)] if len(fine) > 1 else []
    loose = [w for w in runs if w not in (text, text.strip()) and w not in anchored]
    return Units(anchored, tuple(dict.fromkeys([*loose, *glossed(text, parts, coarse)])))


def glossed(text: str, parts: Sequence[str], coarse: Sequence[str]) -> list[str]:
    """The English gloss (:func:`router.safety.gloss.gloss`) of a text written in another
    language, and of each of its sentences that is (``parts``: its :func:`segments`;
    ``coarse``: its sentences split at request words, not at capitals; for texts of up to
    MAX_WINDOW_SENTENCES sentences): an attack translated into Spanish or Turkish reads
    to the English encoder as its English words, also when an English request comes
    before or after it. Nothing for an English text."""
    sentences_of = [*parts, *_joined(coarse)] if 1 < len(parts) <= MAX_WINDOW_SENTENCES else []
    read = list(dict.fromkeys([text, *sentences_of]))
    # Where another language meets English inside a sentence ("... paid cash Necesito la
    # contraseña ..."), the foreign run alone.
    spans = [span for span in map(foreign_span, read) if span is not None]
    out = [gloss(t) for t in dict.fromkeys([*read, *spans])]
    return [g for g in dict.fromkeys(out) if g is not None]


def pieces(text: str) -> list[str]:
    """What is scored besides ``text`` itself (:func:`units`). A text's score per
    category is its highest over itself and these; training fits the same maximum."""
    return list(units(text).all)


def sigmoid(z: Vectors) -> Vectors:
    out: Vectors = (1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))).astype(np.float32)
    return out


class SafetyModel:
    """Scores texts. Immutable; safe to share across threads."""

    def __init__(self, manifest: SafetyManifest, tensors: Mapping[str, np.ndarray]) -> None:
        self.manifest = manifest
        self.version = manifest.version
        # What scored a text: the trained model and the patterns beside it (audited
        # with each verdict; a change to either rescores stored documents).
        self.scorer = f"{manifest.version}+rules-{rules.VERSION}+units-{UNITS}"
        # What scored a document's chunks: they are read whole and sentence by sentence
        # (SafetyModel.probabilities, not units), so a change to the units does not
        # rescore stored documents; a new model or new patterns do.
        self.document_scorer = f"{manifest.version}+rules-{rules.VERSION}"
        self.encoder_name = manifest.encoder
        self._t = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
        missing = [n for n in ("w1", "b1", "w2", "b2", "lex") if n not in self._t]
        if missing:
            raise ArtifactError(f"safety model {manifest.version}: missing tensors {missing}")
        width = manifest.dim + len(manifest.rule_features)
        if self._t["w1"].shape[1] != width or self._t["w2"].shape[0] != len(manifest.categories):
            raise ArtifactError(f"safety model {manifest.version}: weights do not match the manifest")
        if tuple(manifest.rule_features) != rules.FEATURES:
            raise ArtifactError(f"safety model {manifest.version}: trained on other rule features; retrain it")
        self._ngrams = HashedNgrams(manifest.lexical_buckets)
        self._temps = np.array([manifest.temperatures[c] for c in manifest.categories], dtype=np.float32)
        self._column = {c: i for i, c in enumerate(manifest.categories)}
        glossary()  # the lexicons the units read (read once; missing ones fail here, not on a request)

    def logits(self, texts: Sequence[str], vectors: Vectors, feats: Vectors | None = None) -> Vectors:
        """Uncalibrated logits, shape (len(texts), categories). ``feats``: the texts' rule
        features when the caller has them already (:func:`router.safety.rules.features`)."""
        t = self._t
        if feats is None:
            feats = np.asarray(rules.features(texts), dtype=np.float32).reshape(len(texts), -1)
        x = np.concatenate([vectors.astype(np.float32), feats], axis=1)
        hidden = np.maximum(x @ t["w1"].T + t["b1"], 0.0)
        lex = np.stack([t["lex"][self._ngrams.ids(text)].mean(axis=0) for text in texts])
        out: Vectors = hidden @ t["w2"].T + t["b2"] + lex
        return out

    def probabilities(
        self,
        texts: Sequence[str],
        vectors: Vectors,
        feats: Vectors | None = None,
        matched: Sequence[Mapping[str, str]] | None = None,
        material: bool = False,
    ) -> Vectors:
        """Calibrated probabilities, shape (len(texts), categories), the decisive patterns
        included. ``feats``: as for :meth:`logits`; ``matched``: each text's
        :func:`router.safety.rules.decisive` when the caller has it already;
        ``material``: the texts are material (document chunks), so the patterns for
        material (:func:`router.safety.rules.in_material`) read them too."""
        probs = sigmoid(self.logits(texts, vectors, feats) / self._temps)
        for row, found in enumerate(matched if matched is not None else map(rules.decisive, texts)):
            categories = set(found.values()) | ({"injection"} if material and rules.in_material(texts[row]) else set())
            for category in categories:
                col = self._column[category]
                probs[row, col] = max(float(probs[row, col]), OBVIOUS_SCORE)
        return probs

    def embeds_more(self, text: str) -> bool:
        """Whether scoring ``text`` embeds pieces of it besides its own vector (a text of
        several sentences, or with a hidden form): then it is work for a worker thread."""
        return bool(units(text).all)

    def score(self, text: str, vector: Vectors, encode: Callable[[list[str]], Vectors]) -> SafetyScores:
        """``text``'s scores. ``vector``: its embedding (one row); ``encode`` embeds the
        extra pieces scored only when there are any (:func:`units`: sentences and runs of
        them, hidden forms), in one call. The material pasted with the user's request
        (:func:`router.safety.content.pasted`) is also read with the patterns for
        material: an instruction to the assistant inside a pasted e-mail is an
        injection, the same words in the request are not."""
        parts = units(text)
        extra = list(parts.all)
        texts = [text, *extra]
        vectors = vector.reshape(1, -1) if not extra else np.concatenate([vector.reshape(1, -1), encode(extra)])
        feats = np.asarray(rules.features(texts), dtype=np.float32).reshape(len(texts), -1)
        # The decisive patterns read where the writer started a sentence, not a loose piece.
        matched = [rules.decisive(t) for t in (text, *parts.anchored)] + [{}] * len(parts.loose)
        probs = self.probabilities(texts, vectors, feats, matched).max(axis=0)
        scores = {c: float(p) for c, p in zip(self.manifest.categories, probs, strict=True)}
        fired = tuple(name for name, hit in zip(rules.FEATURES, feats[0], strict=True) if hit)
        fired = (*fired, *dict.fromkeys(name for found in matched for name in found))  # and the rules that flag alone
        material = pasted(text[:MAX_CHARS])
        in_material = rules.in_material(material) if material else ()
        if in_material:
            scores["injection"] = max(scores["injection"], OBVIOUS_SCORE)
            fired = (*fired, *in_material)
        return SafetyScores(scores, fired)

    def score_turns(
        self, text: str, history: Sequence[str], vector: Vectors, encode: Callable[[list[str]], Vectors]
    ) -> SafetyScores:
        """The last user message ``text`` in its conversation (``history``: the user's
        earlier turns, oldest first): each category the higher of the message's score and
        the last TURNS turns' read together (an attack split across turns, or a request
        in one turn and the material in the next). Without history, :meth:`score`."""
        scores = self.score(text, vector, encode)
        if not history:
            return scores
        joined = checked_text([*history, text])
        together = self.score(joined, encode([joined])[0], encode)
        return SafetyScores(
            {c: max(s, together.scores[c]) for c, s in scores.scores.items()},
            tuple(dict.fromkeys((*scores.rules, *together.rules))),
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: (v.astype(np.float16) if k == "lex" else v) for k, v in self._t.items()}
        save_file(tensors, str(directory / WEIGHTS))
        (directory / MANIFEST).write_text(self.manifest.to_json() + "\n")

    @classmethod
    def load(cls, directory: Path) -> SafetyModel:
        """Load a version directory. Raises ArtifactError if it is missing or corrupt."""
        try:
            manifest = SafetyManifest.from_json((directory / MANIFEST).read_text())
            tensors = load_file(str(directory / WEIGHTS))
        except Exception as exc:  # OSError, JSON, safetensors' own error type
            raise ArtifactError(f"cannot load the safety model from {directory}: {exc}") from exc
        return cls(manifest, tensors)
