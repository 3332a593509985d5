"""Cleaning and filtering the public dev set's texts: normalisation, personal data, URLs."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MIRROR = Path("/work/.mirror")
DEFAULT_OUT = Path("/work/router-dev/public_dev.jsonl")
DEFAULT_SEED = 13
DOMAINS = ("code", "general", "legal", "support")
MIN_CHARS, MAX_CHARS = 3, 500
MIN_PER_DOMAIN = 200
MAX_SOURCE_SHARE = 0.50

# --- filters -------------------------------------------------------------------------------

URL_RE = re.compile(r"https?://|www\.", re.IGNORECASE)
DOMAIN_RE = re.compile(r"\b[a-z0-9-]+\.(?:com|org|net|io|gov|edu|co\.uk)\b")  # lower case: not "ASP.NET"
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
LONG_DIGITS_RE = re.compile(r"\d{5,}")
PHONE_RE = re.compile(r"(?:\d[\s().-]{0,2}){7,}")
MASK_RE = re.compile(r"xxx|\*\*\*|_name\d|<name>", re.IGNORECASE)
SELF_INTRO_RE = re.compile(r"\b(?:my name is|my name's|this is [A-Z][a-z]+)\b", re.IGNORECASE)
HONORIFIC_RE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr)\.? [A-Z][a-z]+")
TITLE_PAIR_RE = re.compile(r"\b([A-Z][a-z]+) ([A-Z][a-z]+)\b")
# Capitalised word pairs that are places, products or the insurer itself, not people.
NON_PERSON_WORDS = frozenset(
    """
    American Family Star Insurance Dream Keep Dreams Foundation Know Your Drive Emergency Roadside
    Service Assistance Los Angeles New York Jersey Mexico Hampshire Rhode Island Little Rock North
    South Dakota Carolina West Virginia Visa Master Card Apple Google Microsoft Outlook Word Excel
    Skype Windows Office Teams Amazon Prime Pay Customer Safe Driver Teen Easy Smart Home United
    States Auto Life Business Owners Landlord The General Homesite Uber Lyft Gift Cards Farm Ranch
    Policy Declaration Page Claim Card Account Bank
    """.split()  # noqa: SIM905
)

CODE_OR_LEGAL_OR_SUPPORT_RE = re.compile(
    r"\b(?:laws?|legal|illegal(?:ly)?|lawyers?|attorneys?|courts?|sue|sued|lawsuits?|copyright\w*|"
    r"trademarks?|patents?|contracts?|licen[cs]\w*|privacy|gdpr|python|javascript|java|sql|code|"
    r"coding|programming|software|computer|app|password|log ?in|account|refund|billing|invoice|"
    r"subscription|customer service)\b",
    re.IGNORECASE,
)
# Instruction sets also hold markup, formula and programming tasks that the vocabulary above misses.
GENERAL_INSTRUCTION_RE = re.compile(
    rf"{CODE_OR_LEGAL_OR_SUPPORT_RE.pattern}|<[a-z!/][^>]*>|\b(?:html|css|latex|json|xml|regex|regular expressions?|"
    r"functions?|algorithms?|api|bash|shell|terminal|command line|excel|spreadsheets?|formulas?|ssn|social security)\b",
    re.IGNORECASE,
)
LEGAL_RE = re.compile(r"\b(?:licen[cs]\w*|copyright\w*|legal|illegal|gdpr|lawsuit|court)\b", re.IGNORECASE)


def clean(raw: str) -> str:
    """NFC, collapsed whitespace, stripped."""
    return " ".join(unicodedata.normalize("NFC", raw).split())


def norm_key(text: str) -> str:
    """De-duplication key: lower case, letters and digits only."""
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


def has_person_name(text: str) -> bool:
    if SELF_INTRO_RE.search(text) or HONORIFIC_RE.search(text) or "@" in text:
        return True
    for match in TITLE_PAIR_RE.finditer(text):
        if match.start() == 0:
            continue
        first, second = match.group(1), match.group(2)
        if first not in NON_PERSON_WORDS and second not in NON_PERSON_WORDS:
            return True
    return False


def reject_reason(text: str, *, names: bool) -> str | None:
    """Why ``text`` may not be used (None: it may)."""
    if not MIN_CHARS <= len(text) <= MAX_CHARS:
        return "length"
    if len(text.split()) < 2:
        return "one_word"
    if URL_RE.search(text) or DOMAIN_RE.search(text) or EMAIL_RE.search(text):
        return "url_or_email"
    if LONG_DIGITS_RE.search(text) or PHONE_RE.search(text) or MASK_RE.search(text):
        return "personal_data"
    if names and has_person_name(text):
        return "personal_name"
    return None


# --- git snapshots -------------------------------------------------------------------------
