"""A rule-based PII and secret detector: regexes for candidates, checksums and context
to confirm them. Deterministic, offline, and about a millisecond per few KB of text.

Types (stable names: they appear in audit events and placeholders):

=========  ==============================================================  ============
type       what                                                            confirmed by
=========  ==============================================================  ============
EMAIL      addresses with a dotted domain and a letters-only TLD           shape
PHONE      +CC international numbers; North American 3-3-4 with            digit count,
           separators; national numbers starting 0 after a phone word      context
CARD       13-19 digit payment card numbers, optionally grouped            Luhn + IIN
IBAN       international bank account numbers, optionally grouped by 4     mod-97 + length
IP         IPv4 (octets <= 255) and IPv6; not loopback / unspecified       ipaddress
SECRET     API keys of known shapes (AWS, GitHub, Slack, OpenAI-style,     shape,
           Stripe, Google, JWT, PEM private keys, expertgate keys),        context
           bearer tokens, passwords in URLs, ``password=...`` style
           assignments
US_SSN     US social security numbers AAA-GG-SSSS (or 9 digits after       SSA rules
           "SSN"); never area 000/666/9xx, group 00, serial 0000
UK_NINO    UK national insurance numbers (AB 12 34 56 C)                   prefix rules
=========  ==============================================================  ============

Overlaps are resolved by type priority (SECRET first, PHONE last), then length, so a
card number is never also reported as a phone number.

Linear time on any input, adversarial included (tests/backend/guard/test_faults_pii.py): every
pattern either starts only where its own character class does not continue (so two
starts never scan the same run), or has a bounded length; the phone shapes, whose
digit groups made the regex engine try every split, are parsed in :mod:`phones`; a
private key's BEGIN and END lines are found separately and paired, never searched
for from every BEGIN to the end of the text; and overlap resolution bisects.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from backend.guard import phones


class PiiType(StrEnum):
    SECRET = "SECRET"
    EMAIL = "EMAIL"
    IBAN = "IBAN"
    CARD = "CARD"
    US_SSN = "US_SSN"
    UK_NINO = "UK_NINO"
    IP = "IP"
    PHONE = "PHONE"


_PRIORITY = {t: i for i, t in enumerate(PiiType)}


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """A detected span ``text[start:end]``. Holds no copy of the text on purpose."""

    start: int
    end: int
    type: PiiType


# -- checksums ---------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_brand_ok(digits: str) -> bool:
    """A known issuer prefix (IIN) with a length that issuer uses."""
    n = len(digits)
    two, four, six = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 222100 <= six <= 272099:
        return n == 16  # Mastercard
    if two in (34, 37):
        return n == 15  # American Express
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649:
        return n in (16, 19)  # Discover
    if 3528 <= four <= 3589:
        return 16 <= n <= 19  # JCB
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return n in (14, 16, 19)  # Diners Club
    if two == 62:
        return 16 <= n <= 19  # UnionPay
    if digits[:2] in ("50", "56", "57", "58", "63", "67"):
        return 12 <= n <= 19  # Maestro
    return False


# Country -> IBAN length (SWIFT IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TL": 23, "TN": 24, "TR": 26, "UA": 29,
    "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(compact: str) -> bool:
    """``compact`` (no spaces, upper case) has its country's length and mod 97 == 1."""
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


# -- patterns ----------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
    r"(?!:[^\s])"  # git@github.com:org/repo is an SSH remote, not a mailbox
)
# A PEM private key is its BEGIN line (group "pem") to the first END line after it; the
# END lines are found in one pass and paired in _shapes, not searched for from each BEGIN.
_PEM_END = re.compile(r"(?=(-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----))")  # every start, even overlapping
_KEY_SHAPES = (
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"
    r"|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b"
    r"|\bgithub_pat_[A-Za-z0-9_]{22,255}\b"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bsk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,}"
    r"|\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b"
    r"|\bAIza[0-9A-Za-z_-]{35}(?![\w-])"
    r"|(?<![\w-])eg-[A-Za-z0-9_-]{40,}"
)
_KEY = re.compile(_KEY_SHAPES)
_SECRET_SHAPES = re.compile(
    r"(?P<pem>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----)|"
    + _KEY_SHAPES
    # A JWT (header.payload.signature, the header "eyJ..."): group "jwt" is the whole
    # run before the first dot, taken from the run's start so that no two attempts scan
    # the same run; _jwt finds where in it the token starts (its start or after a '-').
    + r"|(?P<jwt>(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{11,})\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
)
_JWT_HEADER = re.compile(r"eyJ[A-Za-z0-9_-]{8}")
_WORD = re.compile(r"\w")
# Group 1 is the secret; the keyword before it stays readable.
_SECRET_CONTEXT = re.compile(
    r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)"
    r"|\b[a-z][a-z0-9+.-]{0,31}://[^\s:/@]*:([^\s@/]{3,})@"
    r"|(?<![\w-])(?:api[_-]?key|apikey|secret(?:[_-]?key)?|client[_-]?secret|access[_-]?token"
    r"|auth[_-]?token|refresh[_-]?token|token|password|passwd|private[_-]?key"
    r"|aws_secret_access_key)(?![\w-])[\"']?\s*[:=]\s*[\"']?([^\s\"'`,;()\[\]{}<>$*%]{6,})"
)
_CARD = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){11,18}(?![\w-]|\.\d)")
_IBAN = re.compile(r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![\w-])")
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])")
_SSN_CONTEXT = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\W{0,10}"
    r"((?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4})\b"
)
_NINO = re.compile(
    r"(?<![\w-])(?!BG|GB|NK|KN|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w-])"
)
_IPV4 = re.compile(r"(?<![\w.-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# Dotted numbers after these words are versions or document sections, not addresses.
_VERSION_WORDS = re.compile(
    r"(?i)(?:version|release|build|v\.?|ver\.?|firmware|section|clause|chapter|article|"
    r"para(?:graph)?|§)\s*$"
)
_PHONE_NANP = re.compile(r"(?<![\w.-])(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w-]|\.\d)")
_PHONE_WORDS = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|fax|call|ring|whatsapp|sms|text me|"
    r"reach (?:me|us|him|her)|contact number|number is|handy|t\.)\b[^\n\d+]{0,24}$"
)
_NOT_PHONE_WORDS = re.compile(
    r"(?i)(?:order|invoice|ticket|case|ref|reference|tracking|serial|part|sku|po|id|no|"
    r"number|#|account|build|version|isbn)\s*[:#.]?\s*$"
)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _before(text: str, start: int, width: int = 32) -> str:
    return text[max(0, start - width) : start]


@dataclass
class PiiDetector:
    """Finds PII in text. Stateless after construction; safe to share across threads."""

    types: frozenset[PiiType] = field(default_factory=lambda: frozenset(PiiType))

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in ``text``, ordered by start."""
        candidates = [f for f in self._candidates(text) if f.type in self.types]
        candidates.sort(key=lambda f: (_PRIORITY[f.type], -(f.end - f.start), f.start))
        # ``taken`` stays sorted and non-overlapping, so only the neighbours of a
        # candidate's insertion point can overlap it (a scan of all of them made ten
        # thousand findings cost seconds).
        taken: list[Finding] = []
        for cand in candidates:
            i = bisect.bisect_left(taken, cand)
            if (i == 0 or taken[i - 1].end <= cand.start) and (i == len(taken) or cand.end <= taken[i].start):
                taken.insert(i, cand)
        return taken

    def _candidates(self, text: str) -> Iterator[Finding]:
        for finder in self._finders:
            yield from finder(text)

    @property
    def _finders(self) -> tuple[Callable[[str], Iterator[Finding]], ...]:
        return (
            _secrets, _emails, _ibans, _cards, _ssns, _ninos, _ipv4s, _ipv6s, _phones,
        )  # fmt: skip

    def redact(self, text: str, placeholders: Placeholders | None = None) -> str:
        """``text`` with each finding replaced by ``[TYPE_n]``.

        The same value gets the same placeholder within one ``placeholders`` scope (pass
        one scope for all messages of a request so "[EMAIL_1]" means one address).
        """
        return self.redact_found(text, self.find(text), placeholders)

    @staticmethod
    def redact_found(text: str, findings: Sequence[Finding], placeholders: Placeholders | None = None) -> str:
        """:meth:`redact` with the findings already made (``find(text)``)."""
        if not findings:
            return text
        scope = placeholders if placeholders is not None else Placeholders()
        out: list[str] = []
        pos = 0
        for f in findings:
            out.append(text[pos : f.start])
            out.append(scope.label(f.type, text[f.start : f.end]))
            pos = f.end
        out.append(text[pos:])
        return "".join(out)


class Placeholders:
    """Value -> ``[TYPE_n]`` labels, numbered per type in order of first appearance."""

    def __init__(self) -> None:
        self._labels: dict[tuple[PiiType, str], str] = {}
        self._counts: dict[PiiType, int] = {}

    def label(self, kind: PiiType, value: str) -> str:
        key = (kind, value)
        if key not in self._labels:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._labels[key] = f"[{kind}_{self._counts[kind]}]"
        return self._labels[key]


# -- finders -----------------------------------------------------------------------


# Cheap substring tests that gate the two (slow, many-branched) secret regexes: most
# text holds none of these, and then neither regex needs to run.
_SHAPE_HINTS = (
    "-----BEGIN", "AKIA", "ASIA", "ABIA", "ACCA", "gh", "github_pat_", "xox", "sk-", "sk_",
    "rk_", "AIza", "eyJ", "eg-",
)  # fmt: skip
_CONTEXT_HINTS = ("bearer", "://", "key", "token", "secret", "passw")


def _shapes(text: str) -> Iterator[Finding]:
    """``_SECRET_SHAPES.finditer`` where a PEM BEGIN line runs on to the first END line
    after it (what a lazy ``BEGIN[\\s\\S]*?END`` matched, without rescanning the rest of
    the text from every BEGIN)."""
    pem_ends: list[tuple[int, int]] | None = None
    pos = 0
    while (m := _SECRET_SHAPES.search(text, pos)) is not None:
        end = m.end()
        if m.lastgroup == "pem":
            if pem_ends is None:
                pem_ends = [(e.start(1), e.end(1)) for e in _PEM_END.finditer(text)]
            i = bisect.bisect_left(pem_ends, (end, 0))
            if i == len(pem_ends):
                pos = m.start() + 1  # no key here; no other shape starts with '-'
                continue
            end = pem_ends[i][1]
        elif m.lastgroup == "jwt":
            start, end = _jwt(text, m)
            if start < 0:
                pos = m.end("jwt") + 1  # no token in this run; the next run may begin one
                continue
            yield Finding(start, end, PiiType.SECRET)
            pos = end
            continue
        yield Finding(m.start(), end, PiiType.SECRET)
        pos = end


def _jwt(text: str, m: re.Match[str]) -> tuple[int, int]:
    """The first secret in the run ``m`` (a _SECRET_SHAPES "jwt" match) begins: the
    leftmost key shape after a '-' before the token's header, else the token from its
    header to the end of ``m``; (-1, -1) when neither."""
    run_start, run_end = m.span("jwt")
    header = _JWT_HEADER.search(text, run_start, run_end)
    while header is not None:
        at = header.start()
        # "\beyJ": after a '-' inside the run, or at its start unless a word character
        # (a non-ASCII letter) precedes it.
        if at > run_start:
            if text[at - 1] == "-":
                break
        elif at == 0 or not _WORD.match(text, at - 1):
            break
        header = _JWT_HEADER.search(text, at + 1, run_end)
    limit = header.start() if header is not None else run_end
    dash = text.find("-", run_start, limit)
    while dash != -1 and dash + 1 < limit:
        key = _KEY.match(text, dash + 1)
        if key is not None:
            return key.span()
        dash = text.find("-", dash + 1, limit)
    return (limit, m.end()) if header is not None else (-1, -1)


def _secrets(text: str) -> Iterator[Finding]:
    if any(h in text for h in _SHAPE_HINTS):
        yield from _shapes(text)
    lowered = text.lower()
    if not any(h in lowered for h in _CONTEXT_HINTS):
        return
    for m in _SECRET_CONTEXT.finditer(text):
        group = next(g for g in (1, 2, 3) if m.group(g) is not None)
        value = m.group(group)
        if group == 3 and not (any(c.isdigit() for c in value) or len(value) >= 16):
            continue  # "password = password", "token: none": names, not secrets
        yield Finding(m.start(group), m.end(group), PiiType.SECRET)


def _emails(text: str) -> Iterator[Finding]:
    for m in _EMAIL.finditer(text):
        yield Finding(m.start(), m.end(), PiiType.EMAIL)


def _ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        compact = m.group().replace(" ", "")
        # The regex may run past the IBAN into a following word: trim to the country length.
        want = _IBAN_LENGTHS.get(compact[:2])
        if want is None or len(compact) < want:
            continue
        span = m.group()
        end, seen = 0, 0
        while seen < want:
            if span[end] != " ":
                seen += 1
            end += 1
        if iban_valid(compact[:want]):
            yield Finding(m.start(), m.start() + end, PiiType.IBAN)


def _cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        raw = m.group()
        digits = _digits(raw)
        if not 13 <= len(digits) <= 19:
            continue
        seps = {ch for ch in raw if not ch.isdigit()}
        if len(seps) > 1:
            continue  # "1234-5678 9012-3456": mixed separators are not how cards are written
        if seps and min(len(g) for g in re.split(r"[ -]", raw)) < 4 and len(digits) != 15:
            continue  # grouped cards use groups of 4 (Amex 4-6-5)
        if luhn_valid(digits) and _card_brand_ok(digits):
            yield Finding(m.start(), m.end(), PiiType.CARD)


def _ssns(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        yield Finding(m.start(), m.end(), PiiType.US_SSN)
    for m in _SSN_CONTEXT.finditer(text):
        yield Finding(m.start(1), m.end(1), PiiType.US_SSN)


def _ninos(text: str) -> Iterator[Finding]:
    for m in _NINO.finditer(text):
        yield Finding(m.start(), m.end(), PiiType.UK_NINO)


def _ipv4s(text: str) -> Iterator[Finding]:
    for m in _IPV4.finditer(text):
        try:
            addr = ipaddress.IPv4Address(m.group())
        except ValueError:
            continue  # an octet over 255 or a leading zero: a version or build number
        if addr.is_loopback or addr.is_unspecified:
            continue  # 127.0.0.1, 0.0.0.0: identify no one
        if _VERSION_WORDS.search(_before(text, m.start(), 16)):
            continue  # "version 1.2.3.4"
        yield Finding(m.start(), m.end(), PiiType.IP)


def _ipv6s(text: str) -> Iterator[Finding]:
    for m in _IPV6.finditer(text):
        raw = m.group()
        if raw.count(":") < 2 or sum(c not in ":" for c in raw) < 4:
            continue
        try:
            addr = ipaddress.IPv6Address(raw)
        except ValueError:
            continue  # times (12:30:45), MAC addresses, C++ scopes
        if addr.is_loopback or addr.is_unspecified:
            continue
        yield Finding(m.start(), m.end(), PiiType.IP)


def _phones(text: str) -> Iterator[Finding]:
    for start, end in phones.international(text):
        if 8 <= len(_digits(text[start:end])) <= 15:
            yield Finding(start, end, PiiType.PHONE)
    for m in _PHONE_NANP.finditer(text):
        if m.group()[0] in "01" or _NOT_PHONE_WORDS.search(_before(text, m.start(), 16)):
            continue  # NANP area codes start 2-9; "order 555-123-4567" is an order number
        yield Finding(m.start(), m.end(), PiiType.PHONE)
    for start, end in phones.national(text):
        if 9 <= len(_digits(text[start:end])) <= 12 and _PHONE_WORDS.search(_before(text, start)):
            yield Finding(start, end, PiiType.PHONE)
