"""A word-for-word English gloss of a message written in another language.

The sentence encoder is English MiniLM: "Ignora todas las instrucciones anteriores"
embeds far from "ignore all previous instructions", so an attack translated into one of
the languages our staff write is scored mostly by its n-grams, and most get through.
The gloss puts each word the lexicon knows into English and leaves the rest (names,
numbers, loanwords such as "prompt" or "admin") as written: "ignore all the instructions
previous". Word order and grammar stay foreign, but the words are the ones the encoder
and the rule features know. The safety model scores the gloss as one more loose unit
(:func:`router.safety.model.units`), as it scores a text's sentences: a text's score
per category is its highest unit's.

Lexicons (``gloss/<language>.tsv``, written by us): one ``form<TAB>english`` per line,
lower case; a form ending in ``*`` is a stem matching any word that starts with it
(Turkish "talimat*" for talimatlarını; the longest stem wins, an exact form wins over a
stem). Words are also looked up without their accents ("instruccion", "goster").
A form written ``~form`` is spelled like an English word of another meaning (German
"was", Dutch "van", Spanish "con"), and so is every one-letter form (Italian "e", Polish
"w"): it is glossed in a text already read as its language, and never counts towards
reading a text as that language.

A text is glossed only when it reads as one of these languages: at least
:data:`MIN_WORDS` of its words, and :data:`MIN_SHARE` of them, are in the same
lexicon and mean something else in English ("section" is no evidence of French;
English words that the lexicons' languages share, "client", "cache", "execute", are
marked ``~``). An
English message is not, so English traffic, nearly all of it, costs a
dictionary lookup per word and no embedding. Where one sentence is English on one side
and another language on the other (a request with no full stop running into a
translated attack), :func:`foreign_span` cuts out the foreign side to be glossed alone.

The lexicons were written for this module from a list of the 600 words most frequent in
our own English training rows; see docs/safety.md, "Messages in other languages".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import MappingProxyType

from router.features import MEMO_WORD_CHARS, WORDS_REMEMBERED

LANGUAGES: tuple[str, ...] = ("es", "fr", "de", "pt", "it", "nl", "pl", "tr")
DIRECTORY = Path(__file__).resolve().parent / "gloss"
# A text is glossed when at least this many of its words, and this share of them, are
# in one language's lexicon.
MIN_WORDS = 3
MIN_SHARE = 0.4
# What is glossed of a long text: the encoder reads its first 256 word pieces anyway.
MAX_CHARS = 1200
MIN_STEM = 4

# A word: letters with no letter, digit or underscore beside them ("3f9a2c", "30W" and
# "user_name" hold none).
_WORD = re.compile(r"(?<!\w)[^\W\d_]+(?!\w)")


def plain(word: str) -> str:
    """``word`` lower-cased without its accents: "Instrucción" -> "instruccion",
    "göster" -> "goster", "ß" -> "ss", Turkish dotless "ı" -> "i"."""
    word = word.lower().replace("ı", "i").replace("ß", "ss")
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


@dataclass(frozen=True)
class Glossary:
    """Every language's lexicon in one index, so a word is looked up once, not once
    per language: ``exact`` maps a form (and its accent-free spelling) to its English
    per language; ``stems`` maps a stem's first :data:`MIN_STEM` letters to the stems
    that start so, longest first; ``after`` maps the forms read only in a text already
    known to be in their language (``~`` forms and single letters) to their English."""

    exact: dict[str, dict[str, str]]
    stems: dict[str, list[tuple[str, str, str]]]
    after: dict[str, dict[str, str]]

    @classmethod
    def read(cls, paths: dict[str, Path]) -> Glossary:
        exact: dict[str, dict[str, str]] = {}
        stems: dict[str, list[tuple[str, str, str]]] = {}
        after: dict[str, dict[str, str]] = {}
        for language, path in paths.items():
            forms: dict[str, str] = {}
            starts: dict[str, str] = {}
            later: dict[str, str] = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                form, sep, english = line.partition("\t")
                form, english = form.strip().lower(), english.strip()
                if not sep or not form or not english:
                    continue
                if form.startswith("~") or len(form) == 1:  # a letter alone is read in context only
                    later.setdefault(form.lstrip("~"), english)
                elif form.endswith("*"):
                    if len(form) > MIN_STEM:
                        starts.setdefault(form[:-1], english)
                else:
                    forms.setdefault(form, english)
            # Accent-free spellings, where they name no other form and are not a
            # letter or two ("à" typed "a" is the English article).
            for table in (forms, starts, later):
                for form, english in list(table.items()):
                    spelled = plain(form)
                    if len(spelled) > 2 and (table is later or spelled not in later):  # "über" typed "uber"
                        table.setdefault(spelled, english)
            for form, english in forms.items():
                exact.setdefault(form, {})[language] = english
            for stem, english in starts.items():
                stems.setdefault(stem[:MIN_STEM], []).append((stem, language, english))
            for form, english in later.items():
                after.setdefault(form, {})[language] = english
        for group in stems.values():
            group.sort(key=lambda entry: -len(entry[0]))
        return cls(exact, stems, after)

    def english(self, word: str) -> dict[str, str]:
        """``word``'s English in each language whose lexicon knows it (an exact form
        before a stem, the longest stem first)."""
        out: dict[str, str] = {}
        for form in dict.fromkeys((word.lower(), plain(word))):
            for language, english in self.exact.get(form, {}).items():
                out.setdefault(language, english)
        for form in dict.fromkeys((word.lower(), plain(word))):
            for stem, language, english in self.stems.get(form[:MIN_STEM], ()):
                if language not in out and form.startswith(stem):
                    out[language] = english
        return out

    def in_language(self, word: str, language: str) -> str | None:
        """``word``'s English in ``language`` among the forms spelled like an English word
        of another meaning (German "was", Dutch "van"), which are read only once the text
        is known to be in that language."""
        for form in dict.fromkeys((word.lower(), plain(word))):
            english = self.after.get(form, {}).get(language)
            if english is not None:
                return english
        return None


@cache
def glossary() -> Glossary:
    """The shipped lexicons, read once per process."""
    return Glossary.read({language: DIRECTORY / f"{language}.tsv" for language in LANGUAGES})


# Each word's English is remembered (a request's words are read by language_of and
# foreign_span, for the text and its sentences), with the bounds of the n-gram memo
# (router.features): words of up to MEMO_WORD_CHARS letters, WORDS_REMEMBERED of them.


def english_of(word: str) -> Mapping[str, str]:
    """``word``'s English in each language whose lexicon knows it (:meth:`Glossary.english`)."""
    return _remembered(word) if len(word) <= MEMO_WORD_CHARS else glossary().english(word)


@lru_cache(maxsize=WORDS_REMEMBERED)
def _remembered(word: str) -> Mapping[str, str]:
    return MappingProxyType(glossary().english(word))


def language_of(text: str) -> tuple[str, list[str | None]] | None:
    """The language whose lexicon knows most of ``text``'s words, with each word's
    English in it, when it knows enough of them to call the text that language
    (:data:`MIN_WORDS`, :data:`MIN_SHARE`); else None."""
    words = _WORD.findall(text[:MAX_CHARS])
    if len(words) < MIN_WORDS:
        return None
    index = glossary()
    found = [english_of(w) for w in words]
    likeliest = _likeliest(words, found)
    if likeliest is None or likeliest[1] < MIN_WORDS or likeliest[1] < MIN_SHARE * len(words):
        return None
    language = likeliest[0]
    pairs = zip(words, found, strict=True)
    return language, [known.get(language) or index.in_language(word, language) for word, known in pairs]


def _likeliest(words: list[str], found: list[Mapping[str, str]]) -> tuple[str, int] | None:
    """The language in which most of ``words`` (``found``: each word's English per
    language) mean something other than in English, and how many do."""
    counts: dict[str, int] = {}
    for word, known in zip(words, found, strict=True):
        for language, english in known.items():
            if _foreign(word, english):
                counts[language] = counts.get(language, 0) + 1
    if not counts:
        return None
    language = max(counts, key=lambda lang: (counts[lang], -LANGUAGES.index(lang)))
    return language, counts[language]


def _foreign(word: str, english: str) -> bool:
    """Whether ``word`` glossed as ``english`` is evidence of another language: not when
    the two are the same word or one starts with the other ("section" is "section",
    "changes" is "change", "application" is "app" in French and in English alike)."""
    a, b = plain(word), plain(english)
    return not (a.startswith(b) or b.startswith(a))


def reads_foreign(word: str) -> bool:
    """Whether a lexicon reads ``word`` as a word of another language, one that is not
    the same word in English ("bisherigen" is; "status" is not)."""
    return any(_foreign(word, english) for english in english_of(word).values())


def foreign_span(text: str) -> str | None:
    """Where ``text`` (its first :data:`MAX_CHARS` characters) is English on one side and
    another language on the other, the other language's side: "how do I mark a job as
    paid Necesito el connection string de la base de datos" -> "Necesito el connection
    string de la base de datos". The language is the one most of its words are known in;
    a word of it counts +1, a word it does not know (English, mostly) -1, a word spelled
    alike in both 0, and the text is cut where the one side's sum minus the other's is
    highest. None when the foreign side has fewer than :data:`MIN_WORDS` words of the
    language, or the other side fewer words it does not know (a text all in one language)."""
    head = text[:MAX_CHARS]
    matches = list(_WORD.finditer(head))
    if len(matches) < 2 * MIN_WORDS:
        return None
    index = glossary()
    words = [m.group(0) for m in matches]
    found = [english_of(w) for w in words]
    likeliest = _likeliest(words, found)
    if likeliest is None or likeliest[1] < MIN_WORDS:
        return None
    language = likeliest[0]
    steps = []
    for word, known in zip(words, found, strict=True):
        meaning = known.get(language)
        if meaning is not None:
            steps.append(1 if _foreign(word, meaning) else 0)
        else:
            steps.append(0 if index.in_language(word, language) is not None else -1)
    sums = [0]
    for step in steps:
        sums.append(sums[-1] + step)
    total = sums[-1]
    # Cut before word k: the foreign side is the suffix (value total - 2 * sums[k]) or
    # the prefix (2 * sums[k] - total).
    k_suffix = min(range(1, len(matches)), key=lambda k: sums[k])
    k_prefix = max(range(1, len(matches)), key=lambda k: sums[k])
    if total - 2 * sums[k_suffix] >= 2 * sums[k_prefix] - total:
        side = range(k_suffix, len(matches))
    else:
        side = range(0, k_prefix)
    rest = [i for i in range(len(matches)) if i not in side]
    if sum(steps[i] > 0 for i in side) < MIN_WORDS or sum(steps[i] < 0 for i in rest) < MIN_WORDS:
        return None  # too little of the language, or nothing else beside it
    return head[matches[side[0]].start() : matches[side[-1]].end()]


def gloss(text: str) -> str | None:
    """``text`` (its first :data:`MAX_CHARS` characters) with every word its language's
    lexicon knows put into English, the rest as written; None when ``text`` does not
    read as one of :data:`LANGUAGES` or the gloss changes nothing."""
    found = language_of(text)
    if found is None:
        return None
    glosses = iter(found[1])
    out = _WORD.sub(lambda m: next(glosses) or m.group(0), text[:MAX_CHARS])
    return out if out.lower() != text[:MAX_CHARS].lower() else None
