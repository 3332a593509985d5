"""Build the public dev set for the routing gate: real, human-written requests from public data.

For model selection only (choosing between gate configurations, encoders, thresholds). It is
never used for training or threshold fitting, and the rows are never committed: the script
writes them outside the repository (default ``/work/router-dev/public_dev.jsonl``) and refuses
any output path inside it. See docs/router-public-dev.md.

Every source is a public GitHub repository read from a git snapshot at a **pinned commit**
(``git --git-dir=<mirror>/<owner>+<name>/repo[/.git] show <sha>:<path>``); nothing is
downloaded here. Get the snapshots first (the ``fetch`` tool of the dev environment puts them
under ``/work/.mirror``), then run, from the repository root::

    python3 bench/router_public_dev.py [--mirror /work/.mirror] [--out /work/router-dev/public_dev.jsonl]

Sources (domain, repo @ pinned commit, path(s), licence; selection and labelling):

general
  ``snips`` - sonos/nlu-benchmark @ b86ac7f1577868c42158d0dec77db50956046696,
  2017-06-custom-intent-engines/<Intent>/{train,validate}_<Intent>.json, CC0-1.0.
  Crowd-written assistant commands (AddToPlaylist, BookRestaurant, GetWeather, PlayMusic,
  RateBook, SearchCreativeWork, SearchScreeningEvent); text = concatenated ``data[].text``.
  All seven intents are assistant commands, so all are ``general``. Sampled evenly per intent.
  ``webquestions`` - brmson/dataset-factoid-webquestions @ 668890853388010fe6ae9a5eb035a7917b88933b,
  main/{trainmodel,val,devtest,test}.json, CC BY 4.0. ``qText``: real search-engine (Google
  Suggest) factoid questions (WebQuestions, Berant et al. 2013). Sampled evenly per wh-word.
  ``strategyqa`` - eladsegal/strategyqa @ 1ba1e97452e189569357876f2854b01357ffbe37,
  data/strategyqa/{train,dev}.json, MIT. ``question``: crowd-written yes/no trivia questions.
  ``truthfulqa_general`` - sylinrl/TruthfulQA @ f6be04e52bbcb41d4d20daee6358231d4a5015d2 (an
  upstream commit, read from the fork koppula/TruthfulQA whose history contains it),
  TruthfulQA.csv, Apache-2.0. ``Question`` of the everyday-knowledge categories (GENERAL_TQA);
  Law, Economics, Finance, Advertising, Politics, Stereotypes and the trick categories are left out.
  Sampled evenly per category.
  ``gsm8k`` - openai/grade-school-math @ 3101c7d5072418e28b9008a6636bde82a006892c,
  grade_school_math/data/{train,test}.jsonl, MIT. ``question``: crowd-written grade-school maths
  word problems (GSM8K).
  ``self_instruct`` - yizhongw/self-instruct @ 0b26ccaa415992100fa32df62d41b994cf928e23,
  data/seed_tasks.jsonl + human_eval/user_oriented_instructions.jsonl, Apache-2.0. The 175
  human-written seed tasks and 252 expert-written user-oriented tasks (not the model-generated
  82K); text = ``instruction``, followed by the first instance's ``input`` where it has one (the
  request as a user would paste it). Tasks written for developer tools (SELF_INSTRUCT_DROP_APPS)
  and items with markup/programming/spreadsheet vocabulary (GENERAL_INSTRUCTION_RE) are left
  out. Writing, rewriting, brainstorming, how-to, recipes, jokes. Sampled evenly per file.
  ``personality_chat`` - microsoft/BotBuilder-PersonalityChat @ 67174467a6d94b849c0fe2e4b5c4c2053ed9ed88
  (an upstream commit, read from the fork ntulsi/BotBuilder-PersonalityChat),
  CSharp/Datasets/Queries_Responses_{Professional,Friendly,Humorous}_QnAMaker.tsv, MIT.
  ``Question``: small-talk queries to a bot ("Do you love me?", "I am lonely"), sampled evenly
  per ``Metadata`` scenario.

code
  ``conala`` - zorazrw/multilingual-conala @ b48112fe492432507d72004aafb6f0c399308333,
  dataset/train/train.json, CC BY-SA 4.0. The English CoNaLa annotated train set; ``intent`` is
  the original Stack Overflow question title (Python), one per ``question_id``.
  ``staqc_sql`` - LittleYUYU/StackOverflow-Question-Code-Dataset @ 81b74afb40b2c57b34a92ad94a67ade0c305d101,
  annotation_tool/data/code_solution_labeled_data/source/sql_how_to_do_it_by_classifier_multiple_qid_to_title.pickle,
  CC BY 4.0. StaQC "how-to-do-it" Stack Overflow titles tagged SQL. The pickle is a plain
  ``{qid: title}`` dict; it is read with an unpickler that refuses every global, so no code runs.
  ``tldr`` - tldr-pages/tldr @ 08e345f42639f67d99282813247ac670dc6e87cb, pages/<platform>/*.md
  (English pages only), CC BY 4.0. The human-written description line of each example
  ("- Create a gzipped archive and write it to a file:"), without the trailing colon and with
  the mnemonic brackets removed ("[c]reate" -> "create"); at least four words, and "display
  help/version" lines left out (TLDR_GENERIC_RE). Sampled evenly over common, linux, osx,
  windows and the other platforms together.
  ``cheatsheets`` - cheat/cheatsheets @ 36bdb99dcfadde210503d8c2dcf94b34ee950e1d, <sheet> files,
  CC0-1.0. The "# To <task>:" comment above each command, as "<Task>" (at least three words);
  sampled evenly per sheet.

legal
  ``policyqa`` - wasiahmad/PolicyQA @ 775538bc6d932e9d0dd16975d4373659cf8964fe,
  data/dev.json + data/test.json, MIT (the policies themselves come from OPP-115). The
  human-written privacy questions users would ask a website or app ("Do you sell my data?");
  unique question strings, sampled evenly per OPP-115 category (the first part of ``type``);
  the "User Access, Edit and Deletion" category is left out (POLICYQA_DROP: account management
  as much as privacy law, so ambiguous with support).
  ``truthfulqa_law`` - sylinrl/TruthfulQA @ f6be04e52bbcb41d4d20daee6358231d4a5015d2 (via the
  fork koppula/TruthfulQA), TruthfulQA.csv, Apache-2.0. Every ``Question`` of category ``Law``
  (lay questions on what is legal where, rights, courts, lawyers).
  ``mmlu_law`` - hendrycks/test @ f112c7a259c48bc97cfca63fc0cf66235a5d9bcf (the commit before the
  data moved to a tarball), data/test/{international_law,jurisprudence,professional_law}_test.csv,
  MIT. MMLU question stems (law-school and bar-exam style, collected from practice exams by
  people); only stems that end with "?" (no fill-in-the-blank fragments). Sampled evenly per subject.
  ``rule_qa`` - HazyResearch/legalbench @ 724cb4f5d9930787820f51a12011b20c7ec1d736 (an early
  commit that still held the test split), tasks/rule_qa/test.tsv, CC BY 4.0. The 50
  hand-written LegalBench Rule QA questions (civil procedure, evidence, IP, constitutional law).
  ``learned_hands`` - loc110504/ACAL @ ffb0e6788339f5873f2d2c9ee48fe30d5d5fe8dd,
  data/learned_hands_courts/{test,train}.tsv, CC BY-NC-SA 4.0 (Learned Hands, via LegalBench).
  r/legaladvice posts labelled by the Stanford Legal Design Lab; every post is a lay legal
  question (the task's "No" rows are posts on other legal topics), so all are ``legal``; HTML
  entities unescaped; the personal-name heuristic applies.
  ``avvo`` - arian-askari/EF_in_Legal_CQA @ ad7b86650888c0fa145288551c3df6ac6f664559,
  data/question_links_bankruptcy.json, no licence file (README: cite Askari et al., ECIR 2022).
  Lay question titles from the Avvo legal Q&A URLs ("how can i remove a lien on my property"),
  lower case with punctuation dropped; only slugs under Avvo's 50-character cut (whole titles).
  Mostly bankruptcy, debt, divorce and collections.

support
  ``acid`` - AmFamMLTeam/ACID @ 66bc5e0afa33495d8c61fba76b8c551af84bfa6e,
  customer_training.csv + customer_testing.csv, no licence file (README: cite Acharya & Fung,
  KDD Converse 2020). Insurance customers' messages to the insurer, labelled with 175 intents;
  kept: ``INFO_*`` intents about the customer's own policy, billing, payments, claims, account,
  login and documents; dropped: small talk (``ST_*``, ``YES``, ``NO``), job enquiries, body-shop
  and vendor intents, other companies' contacts and generic "what is X coverage" explanations
  (ACID_DROP). Sampled evenly per intent.
  ``multidogo`` - awslabs/multi-domain-goal-oriented-dialogues-dataset @ baa30639c4b271f394b81443c842193407cdf26d,
  data/paper_splits/splits_annotated_at_turn_level/<domain>/{train,dev,test}.tsv, CDLA-Permissive-1.0.
  Crowd-worker customers talking to agents (airline, bank, insurance, telecom/media, software
  help desk). Per conversation, the first customer turn whose intent is a service request
  (MULTIDOGO_INTENTS; flight booking and the fast-food domain are left out as assistant-style
  bookings) and whose slot labels are all non-personal (no names, numbers, addresses, ...).
  Sampled evenly per domain.
  ``rsics`` - Next IT's RSiCS corpus (Beaver et al. 2017), read from negi-notes/contact-center @
  7a6c465ed2891eb48f71444e55a2971e82d09261, data/rsics_dataset/RSiCS/{tagged_selections_by_sentence,all_multi_intent}.csv,
  ODbL-1.0 with RSiCS terms (no re-identification; cite the paper). Real users' requests to three
  live customer-service virtual agents (train travel, airline, telecom support); the original
  request text (reviewers' [ ] selection marks removed), one per request. Dataset 1 (TripAdvisor
  forum posts, travellers asking each other) is left out; requests with sanitised PII (``#``,
  ``--``) or anonymised company/product names (``cname-``, ``pname-``) are skipped
  (RSICS_MASK_RE); the personal-name heuristic applies. Sampled evenly per agent.

Common rules: whitespace collapsed; 3-500 characters and at least two words; items with URLs or
web domains, e-mail addresses, 5+ digit runs or phone-like numbers, or masked values (``xxx``)
are skipped; in the free-text user messages (acid, multidogo, rsics, learned_hands) also any ``@``,
self-introductions, "Mr/Mrs/Dr X" and capitalised word pairs that are not known places or
products (likely personal names), and in ACID texts with the double spaces it leaves where it
removed numbers or names. A general source drops items that touch code/legal/support vocabulary
(CODE_OR_LEGAL_OR_SUPPORT_RE), a code source drops licence/legal ones (LEGAL_RE). De-duplication
on a normalised key, within and across sources (a text found under two domains is dropped).
Sampling is seeded (``--seed``, default 13), stratified round-robin over each source's strata,
capped per source (``cap``) so that no single source holds more than half of a domain (the report
warns above MAX_SOURCE_SHARE); after sampling, any row
whose text is also in the repository's own router/data/**/*.jsonl (train/test/conversations and
any other training files) is dropped, so the dev set never repeats a training example. Output
rows: ``{"text", "domain", "source"}``, sorted by domain and source.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import pickle
import random
import re
import subprocess
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
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


class SnapshotError(RuntimeError):
    pass


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class Snapshot:
    """One repository's git directory under the mirror root, read at a pinned commit."""

    def __init__(self, mirror: Path, repo: str, commit: str) -> None:
        self.repo = repo
        self.commit = commit
        self.git_dir = self._find_git_dir(mirror, repo)
        probe = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "cat-file", "-e", f"{commit}^{{commit}}"],
            capture_output=True,
        )
        if probe.returncode != 0:
            raise SnapshotError(f"{repo}: commit {commit} is not in {self.git_dir} (fetch a newer snapshot)")

    @staticmethod
    def _find_git_dir(mirror: Path, repo: str) -> Path:
        base = mirror / repo.replace("/", "+")
        for candidate in (base / "repo" / ".git", base / "repo", base / ".git", base):
            if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
                return candidate
        raise SnapshotError(f"{repo}: no git snapshot under {base} (fetch github:{repo} first)")

    def blob(self, path: str) -> bytes:
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "show", f"{self.commit}:{path}"],
            capture_output=True,
        )
        if done.returncode != 0:
            raise SnapshotError(f"{self.repo}@{self.commit[:12]}: cannot read {path}: {done.stderr.decode().strip()}")
        return done.stdout

    def tree(self, prefix: str) -> list[str]:
        """Paths of the files under ``prefix`` at the pinned commit, sorted."""
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "ls-tree", "-r", "-z", "--name-only", self.commit, "--", prefix],
            capture_output=True,
        )
        if done.returncode != 0:
            raise SnapshotError(f"{self.repo}@{self.commit[:12]}: cannot list {prefix}: {done.stderr.decode().strip()}")
        return sorted(name for name in done.stdout.decode().split("\0") if name)

    def texts(self, paths: Iterable[str]) -> dict[str, str]:
        """Many files at once (one ``git cat-file --batch``), decoded like ``text``."""
        wanted = list(paths)
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"],
            input="".join(f"{self.commit}:{path}\n" for path in wanted).encode(),
            capture_output=True,
        )
        if done.returncode != 0:
            raise SnapshotError(f"{self.repo}@{self.commit[:12]}: cat-file failed: {done.stderr.decode().strip()}")
        out: dict[str, str] = {}
        data, pos = done.stdout, 0
        for path in wanted:
            end = data.index(b"\n", pos)
            header = data[pos:end].split()
            pos = end + 1
            if len(header) != 3 or header[1] != b"blob":
                raise SnapshotError(f"{self.repo}@{self.commit[:12]}: cannot read {path}")
            size = int(header[2])
            out[path] = _decode(data[pos : pos + size])
            pos += size + 1
        return out

    def text(self, path: str) -> str:
        return _decode(self.blob(path))

    def json(self, path: str) -> object:
        return json.loads(self.text(path))


# --- sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    text: str
    stratum: str
    raw: str = ""  # the text before clean(), where a loader's filter needs it


Loader = Callable[[Snapshot], list[Candidate]]


@dataclass(frozen=True)
class Source:
    key: str
    domain: str
    repo: str  # owner/name of the snapshot that is read
    commit: str
    paths: tuple[str, ...]
    licence: str
    cap: int
    load: Loader
    names: bool = False  # apply the personal-name heuristic (free-text customer messages)
    cross_domain: re.Pattern[str] | None = None  # items matching it are dropped


SNIPS_INTENTS = (
    "AddToPlaylist",
    "BookRestaurant",
    "GetWeather",
    "PlayMusic",
    "RateBook",
    "SearchCreativeWork",
    "SearchScreeningEvent",
)
SNIPS_PATHS = tuple(
    f"2017-06-custom-intent-engines/{intent}/{split}_{intent}.json"
    for intent in SNIPS_INTENTS
    for split in ("train", "validate")
)


def load_snips(snap: Snapshot) -> list[Candidate]:
    out: list[Candidate] = []
    for path in SNIPS_PATHS:
        data = snap.json(path)
        assert isinstance(data, dict)
        for intent, items in data.items():
            for item in items:
                text = "".join(part["text"] for part in item["data"])
                out.append(Candidate(clean(text), intent))
    return out


WEBQ_PATHS = tuple(f"main/{split}.json" for split in ("trainmodel", "val", "devtest", "test"))


def load_webquestions(snap: Snapshot) -> list[Candidate]:
    out: list[Candidate] = []
    for path in WEBQ_PATHS:
        data = snap.json(path)
        assert isinstance(data, list)
        for row in data:
            text = clean(row["qText"])
            out.append(Candidate(text, text.split(" ", 1)[0].lower() if text else ""))
    return out


STRATEGYQA_PATHS = ("data/strategyqa/train.json", "data/strategyqa/dev.json")


def load_strategyqa(snap: Snapshot) -> list[Candidate]:
    out: list[Candidate] = []
    for path in STRATEGYQA_PATHS:
        data = snap.json(path)
        assert isinstance(data, list)
        out.extend(Candidate(clean(row["question"]), "all") for row in data)
    return out


TRUTHFULQA_PATH = "TruthfulQA.csv"
GENERAL_TQA = frozenset(
    {
        "Misconceptions",
        "Health",
        "Nutrition",
        "Science",
        "History",
        "Weather",
        "Language",
        "Proverbs",
        "Misquotations",
        "Myths and Fairytales",
        "Superstitions",
        "Paranormal",
        "Fiction",
        "Psychology",
        "Sociology",
        "Religion",
        "Education",
        "Confusion: Places",
        "Confusion: People",
        "Mandela Effect",
        "Statistics",
    }
)


def _truthfulqa(snap: Snapshot, keep: Callable[[str], bool]) -> list[Candidate]:
    rows = csv.DictReader(io.StringIO(snap.text(TRUTHFULQA_PATH)))
    return [Candidate(clean(row["Question"]), row["Category"]) for row in rows if keep(row["Category"])]


def load_truthfulqa_general(snap: Snapshot) -> list[Candidate]:
    return _truthfulqa(snap, lambda category: category in GENERAL_TQA)


def load_truthfulqa_law(snap: Snapshot) -> list[Candidate]:
    return _truthfulqa(snap, lambda category: category == "Law")


CONALA_PATH = "dataset/train/train.json"


def load_conala(snap: Snapshot) -> list[Candidate]:
    data = snap.json(CONALA_PATH)
    assert isinstance(data, list)
    seen: set[int] = set()
    out: list[Candidate] = []
    for row in data:
        if row["question_id"] in seen or not row.get("intent"):
            continue
        seen.add(row["question_id"])
        out.append(Candidate(clean(row["intent"]), "all"))
    return out


STAQC_SQL_PATH = (
    "annotation_tool/data/code_solution_labeled_data/source/sql_how_to_do_it_by_classifier_multiple_qid_to_title.pickle"
)


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Plain containers and strings only: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")


def load_staqc_sql(snap: Snapshot) -> list[Candidate]:
    data = _NoGlobalsUnpickler(io.BytesIO(snap.blob(STAQC_SQL_PATH))).load()
    assert isinstance(data, dict)
    return [Candidate(clean(str(title)), "all") for _, title in sorted(data.items())]


POLICYQA_PATHS = ("data/dev.json", "data/test.json")
# OPP-115 category whose questions ("Can I deactivate my account?", "Can I edit my profile?") are
# account management as much as privacy law: left out as ambiguous between legal and support.
POLICYQA_DROP = frozenset({"User Access, Edit and Deletion"})


def load_policyqa(snap: Snapshot) -> list[Candidate]:
    categories: dict[str, set[str]] = defaultdict(set)
    for path in POLICYQA_PATHS:
        data = snap.json(path)
        assert isinstance(data, dict)
        for policy in data["data"]:
            for paragraph in policy["paragraphs"]:
                for qa in paragraph["qas"]:
                    categories[clean(qa["question"])].add(qa["type"].split("|||", 1)[0])
    return [
        Candidate(text, min(cats)) for text, cats in sorted(categories.items()) if text and not cats & POLICYQA_DROP
    ]


ACID_PATHS = ("customer_training.csv", "customer_testing.csv")
ACID_DROP = frozenset(
    {
        "INFO_CAREERS",
        "INFO_EMPLOYMENT_VERIFY",
        "INFO_DREAMS_FOUNDATION",
        "INFO_CL_DRP_ASSIGN",
        "INFO_CL_DRP_JOIN",
        "INFO_CL_HRP_JOIN",
        "INFO_CL_SHOP_ADD_WORK",
        "INFO_CL_SHOP_SEND_ESTIMATE",
        "INFO_THE_GENERAL_CONTACT",
        "INFO_HOMESITE_CONTACT",
        "INFO_UW_ALUMNI_DISCOUNT",
        "INFO_srtwentytwo",  # what an SR-22 filing is: regulatory, not the customer's account
        "INFO_CFR_QUESTION_GENERAL",
        "INFO_LIFE_QUESTION_GENERAL",
        "INFO_MORTGAGE_CO_POI",
    }
)


def load_acid(snap: Snapshot) -> list[Candidate]:
    out: list[Candidate] = []
    for path in ACID_PATHS:
        for row in csv.DictReader(io.StringIO(snap.text(path))):
            intent = row["INTENT_NAME"]
            if not intent.startswith("INFO_") or intent in ACID_DROP or intent.endswith("_EXPLAN"):
                continue
            raw = row["UTTERANCES"]
            out.append(Candidate(clean(raw), intent, raw))
    return out


MULTIDOGO_DIR = "data/paper_splits/splits_annotated_at_turn_level"
MULTIDOGO_INTENTS: dict[str, frozenset[str]] = {
    "airline": frozenset({"changeseatassignment", "getboardingpass", "getseatinfo"}),
    "finance": frozenset(
        {
            "reportlostcard",
            "updateaddress",
            "checkbalance",
            "transfermoney",
            "disputecharge",
            "replacecard",
            "closeaccount",
            "getroutingnumber",
            "checkoffereligibility",
            "orderchecks",
            "openaccount",
        }
    ),
    "insurance": frozenset({"getproofofinsurance", "checkclaimstatus", "reportbrokenphone"}),
    "media": frozenset(
        {
            "startserviceintent",
            "viewbillsintent",
            "getinformationintent",
            "transferserviceintent",
            "upgradeserviceintent",
            "cancelserviceintent",
            "viewdatausageintent",
            "updateaccountinfo",
            "getchannelpackageintent",
        }
    ),
    "software": frozenset({"reportbrokensoftware", "softwareupdate"}),
}
MULTIDOGO_PATHS = tuple(
    f"{MULTIDOGO_DIR}/{domain}/{split}.tsv" for domain in MULTIDOGO_INTENTS for split in ("train", "dev", "test")
)
# Slot labels that carry no personal data; a turn with any other label is skipped.
MULTIDOGO_SAFE_SLOTS = frozenset(
    {
        "O",
        "service_type",
        "software_name",
        "seat_type",
        "car_model",
        "car_year",
        "car_brand",
        "datacategoryvalues",
        "replacement_reason",
        "expense_type",
        "channel_package",
        "offer",
        "promotion",
        "frequency",
        "quantity",
        "item_name",
    }
)


def load_multidogo(snap: Snapshot) -> list[Candidate]:
    out: list[Candidate] = []
    for path in MULTIDOGO_PATHS:
        domain = path.split("/")[-2]
        keep = MULTIDOGO_INTENTS[domain]
        turns: dict[str, list[tuple[float, str, str, str]]] = defaultdict(list)
        reader = csv.reader(io.StringIO(snap.text(path)), delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            if len(row) != 6 or row[0] == "conversationId":
                continue
            conv, turn, _uid, utterance, slots, intent = row
            try:
                turns[conv].append((float(turn), utterance, slots, intent))
            except ValueError:
                continue
        for conv in sorted(turns):
            for _, utterance, slots, intent in sorted(turns[conv]):
                if intent and all(part in keep for part in intent.split("<div>")):
                    if set(slots.split()) <= MULTIDOGO_SAFE_SLOTS and len(utterance.split()) >= 3:
                        out.append(Candidate(clean(utterance), domain))
                    break  # the first service request of the conversation only
    return out


# --- general: maths, writing/how-to requests, small talk --------------------------------------

GSM8K_PATHS = ("grade_school_math/data/train.jsonl", "grade_school_math/data/test.jsonl")


def load_gsm8k(snap: Snapshot) -> list[Candidate]:
    out: list[Candidate] = []
    for path in GSM8K_PATHS:
        for line in snap.text(path).splitlines():
            if line.strip():
                out.append(Candidate(clean(json.loads(line)["question"]), "all"))
    return out


SELF_INSTRUCT_PATHS = ("data/seed_tasks.jsonl", "human_eval/user_oriented_instructions.jsonl")
# User-oriented tasks written for developer tools (code, LaTeX, spreadsheets formulas, issue
# trackers): left out of a general source.
SELF_INSTRUCT_DROP_APPS = frozenset(
    {
        "StackOverflow",
        "Leetcode",
        "GeeksforGeeks",
        "Github",
        "w3schools",
        "Overleaf",
        "Jira",
        "MS Excel",
        "Google Sheet",
        "Google Sheets",
        "Markdown",
        "https://abcnotation.com/",
    }
)


def load_self_instruct(snap: Snapshot) -> list[Candidate]:
    """The human-written seed tasks and user-oriented evaluation tasks (not the generated ones)."""
    out: list[Candidate] = []
    for path in SELF_INSTRUCT_PATHS:
        stratum = "seed" if "seed" in path else "user_oriented"
        for line in snap.text(path).splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("motivation_app") in SELF_INSTRUCT_DROP_APPS:
                continue
            instances = row.get("instances") or [{}]
            given = str(instances[0].get("input", "")).strip()
            # A request that refers to "the given ..." input is shown with it, as a user would paste it.
            text = f"{row['instruction']}\n{given}" if given else row["instruction"]
            out.append(Candidate(clean(text), stratum))
    return out


PERSONALITY_CHAT_PATHS = tuple(
    f"CSharp/Datasets/Queries_Responses_{persona}_QnAMaker.tsv" for persona in ("Professional", "Friendly", "Humorous")
)


def load_personality_chat(snap: Snapshot) -> list[Candidate]:
    out: list[Candidate] = []
    for path in PERSONALITY_CHAT_PATHS:
        for row in csv.DictReader(io.StringIO(snap.text(path)), delimiter="\t", quoting=csv.QUOTE_NONE):
            if row.get("Question"):
                out.append(Candidate(clean(row["Question"]), row.get("Metadata") or "none"))
    return out


# --- code: plain-English command requests ----------------------------------------------------

TLDR_MNEMONIC_RE = re.compile(r"\[([A-Za-z0-9]{1,4})\]")  # "[c]reate a [f]ile" -> "create a file"
TLDR_GENERIC_RE = re.compile(r"^(?:display|show|print|get)(?: the)? (?:help|version|usage|manual)\b", re.IGNORECASE)
TLDR_MAIN_PLATFORMS = frozenset({"common", "linux", "osx", "windows"})


def load_tldr(snap: Snapshot) -> list[Candidate]:
    """The description line of each example in the English pages ("- Extract an archive:")."""
    paths = [path for path in snap.tree("pages/") if path.endswith(".md")]
    out: list[Candidate] = []
    for path, body in snap.texts(paths).items():
        platform = path.split("/")[1]
        stratum = platform if platform in TLDR_MAIN_PLATFORMS else "other"
        for line in body.splitlines():
            if line.startswith("- ") and line.rstrip().endswith(":"):
                text = clean(TLDR_MNEMONIC_RE.sub(r"\1", line[2:].rstrip()[:-1]))
                if len(text.split()) >= 4 and not TLDR_GENERIC_RE.match(text):
                    out.append(Candidate(text, stratum))
    return out


CHEAT_TO_RE = re.compile(r"^#\s*To\s+(\S.*?)\s*:?\s*$")


def load_cheatsheets(snap: Snapshot) -> list[Candidate]:
    """The "# To do X:" comment above each command, as "Do X"; one stratum per sheet."""
    paths = [path for path in snap.tree(".") if not path.startswith(".")]
    out: list[Candidate] = []
    for path, body in snap.texts(paths).items():
        for line in body.splitlines():
            match = CHEAT_TO_RE.match(line)
            if match:
                task = clean(match.group(1))
                if len(task.split()) >= 3:  # "To list all:" style fragments say nothing without the sheet
                    out.append(Candidate(task[0].upper() + task[1:], path))
    return out


# --- legal: exam and lay questions -----------------------------------------------------------

MMLU_LAW_PATHS = tuple(
    f"data/test/{subject}_test.csv" for subject in ("international_law", "jurisprudence", "professional_law")
)


def load_mmlu_law(snap: Snapshot) -> list[Candidate]:
    """Question stems of the MMLU law subjects; only stems that are questions ("...?"), not fill-ins."""
    out: list[Candidate] = []
    for path in MMLU_LAW_PATHS:
        subject = path.rsplit("/", 1)[1].removesuffix("_test.csv")
        for row in csv.reader(io.StringIO(snap.text(path))):
            text = clean(row[0]) if row else ""
            if text.endswith("?"):
                out.append(Candidate(text, subject))
    return out


RULE_QA_PATH = "tasks/rule_qa/test.tsv"


def load_rule_qa(snap: Snapshot) -> list[Candidate]:
    rows = csv.DictReader(io.StringIO(snap.text(RULE_QA_PATH)), delimiter="\t")
    return [Candidate(clean(row["text"]), row["slice"]) for row in rows if row.get("text")]


LEARNED_HANDS_PATHS = ("data/learned_hands_courts/test.tsv", "data/learned_hands_courts/train.tsv")


def load_learned_hands(snap: Snapshot) -> list[Candidate]:
    """Every post, whatever its courts label: all are r/legaladvice questions (the negatives are other topics)."""
    csv.field_size_limit(1 << 24)
    out: list[Candidate] = []
    for path in LEARNED_HANDS_PATHS:
        for row in csv.DictReader(io.StringIO(snap.text(path)), delimiter="\t"):
            if row.get("text"):
                out.append(Candidate(clean(html.unescape(row["text"])), "all"))
    return out


AVVO_PATH = "data/question_links_bankruptcy.json"
AVVO_SLUG_RE = re.compile(r"/legal-answers/([a-z0-9-]+)-\d+\.html$")
AVVO_SLUG_MAX = 48  # Avvo cuts slugs at 50 characters; shorter ones hold the whole title


def load_avvo(snap: Snapshot) -> list[Candidate]:
    """Question titles from the Avvo URL slugs (lower case, punctuation dropped), whole titles only."""
    data = snap.json(AVVO_PATH)
    assert isinstance(data, dict)
    out: list[Candidate] = []
    for page in sorted(data):
        for url in data[page]:
            match = AVVO_SLUG_RE.search(url)
            if match and len(match.group(1)) <= AVVO_SLUG_MAX:
                out.append(Candidate(clean(match.group(1).replace("-", " ")), "all"))
    return out


# --- support: requests to customer-service virtual agents --------------------------------------

RSICS_DIR = "data/rsics_dataset/RSiCS"
RSICS_PATHS = (f"{RSICS_DIR}/tagged_selections_by_sentence.csv", f"{RSICS_DIR}/all_multi_intent.csv")
# Dataset 1 (TripAdvisor airline forum) is travellers asking each other, not a business: left out.
RSICS_DATASETS = {"2": "train_iva", "3": "airline_iva", "4": "telecom_iva"}
# Sanitised PII ("#" for digits, "-" for letters) and anonymised company/product names.
RSICS_MASK_RE = re.compile(r"#|--|\bcname|\bpname", re.IGNORECASE)


def load_rsics(snap: Snapshot) -> list[Candidate]:
    texts: dict[tuple[str, str], str] = {}
    for path in RSICS_PATHS:
        for row in csv.DictReader(io.StringIO(snap.text(path))):
            key = (row["Dataset ID"], row["Request ID"])
            if key[0] not in RSICS_DATASETS or key in texts:
                continue
            # The tagged file marks reviewers' selections with [ ]; the original request is the text without them.
            raw = row["Text"] if "Text" in row else row["MergedSelections"].replace("[", "").replace("]", "")
            texts[key] = raw
    return [
        Candidate(clean(raw), RSICS_DATASETS[dataset])
        for (dataset, _), raw in sorted(texts.items())
        if not RSICS_MASK_RE.search(raw)
    ]


TRUTHFULQA_REPO = "koppula/TruthfulQA"  # a fork whose history holds the upstream commit below
TRUTHFULQA_COMMIT = "f6be04e52bbcb41d4d20daee6358231d4a5015d2"  # sylinrl/TruthfulQA, "adding binary MC option"
PERSONALITY_CHAT_REPO = "ntulsi/BotBuilder-PersonalityChat"  # a fork whose history holds the upstream commit below
PERSONALITY_CHAT_COMMIT = "67174467a6d94b849c0fe2e4b5c4c2053ed9ed88"  # microsoft/BotBuilder-PersonalityChat

SOURCES: tuple[Source, ...] = (
    Source(
        "snips",
        "general",
        "sonos/nlu-benchmark",
        "b86ac7f1577868c42158d0dec77db50956046696",
        SNIPS_PATHS,
        "CC0-1.0",
        80,
        load_snips,
        cross_domain=CODE_OR_LEGAL_OR_SUPPORT_RE,
    ),
    Source(
        "webquestions",
        "general",
        "brmson/dataset-factoid-webquestions",
        "668890853388010fe6ae9a5eb035a7917b88933b",
        WEBQ_PATHS,
        "CC-BY-4.0",
        60,
        load_webquestions,
        cross_domain=CODE_OR_LEGAL_OR_SUPPORT_RE,
    ),
    Source(
        "strategyqa",
        "general",
        "eladsegal/strategyqa",
        "1ba1e97452e189569357876f2854b01357ffbe37",
        STRATEGYQA_PATHS,
        "MIT",
        45,
        load_strategyqa,
        cross_domain=CODE_OR_LEGAL_OR_SUPPORT_RE,
    ),
    Source(
        "truthfulqa_general",
        "general",
        TRUTHFULQA_REPO,
        TRUTHFULQA_COMMIT,
        (TRUTHFULQA_PATH,),
        "Apache-2.0",
        35,
        load_truthfulqa_general,
        cross_domain=CODE_OR_LEGAL_OR_SUPPORT_RE,
    ),
    Source(
        "gsm8k",
        "general",
        "openai/grade-school-math",
        "3101c7d5072418e28b9008a6636bde82a006892c",
        GSM8K_PATHS,
        "MIT",
        55,
        load_gsm8k,
        cross_domain=CODE_OR_LEGAL_OR_SUPPORT_RE,
    ),
    Source(
        "self_instruct",
        "general",
        "yizhongw/self-instruct",
        "0b26ccaa415992100fa32df62d41b994cf928e23",
        SELF_INSTRUCT_PATHS,
        "Apache-2.0",
        65,
        load_self_instruct,
        cross_domain=GENERAL_INSTRUCTION_RE,
    ),
    Source(
        "personality_chat",
        "general",
        PERSONALITY_CHAT_REPO,
        PERSONALITY_CHAT_COMMIT,
        PERSONALITY_CHAT_PATHS,
        "MIT",
        35,
        load_personality_chat,
        cross_domain=CODE_OR_LEGAL_OR_SUPPORT_RE,
    ),
    Source(
        "conala",
        "code",
        "zorazrw/multilingual-conala",
        "b48112fe492432507d72004aafb6f0c399308333",
        (CONALA_PATH,),
        "CC-BY-SA-4.0",
        110,
        load_conala,
        cross_domain=LEGAL_RE,
    ),
    Source(
        "staqc_sql",
        "code",
        "LittleYUYU/StackOverflow-Question-Code-Dataset",
        "81b74afb40b2c57b34a92ad94a67ade0c305d101",
        (STAQC_SQL_PATH,),
        "CC-BY-4.0",
        90,
        load_staqc_sql,
        cross_domain=LEGAL_RE,
    ),
    Source(
        "tldr",
        "code",
        "tldr-pages/tldr",
        "08e345f42639f67d99282813247ac670dc6e87cb",
        ("pages/<platform>/*.md",),
        "CC-BY-4.0",
        100,
        load_tldr,
        cross_domain=LEGAL_RE,
    ),
    Source(
        "cheatsheets",
        "code",
        "cheat/cheatsheets",
        "36bdb99dcfadde210503d8c2dcf94b34ee950e1d",
        ("<sheet>",),
        "CC0-1.0",
        60,
        load_cheatsheets,
        cross_domain=LEGAL_RE,
    ),
    Source(
        "policyqa",
        "legal",
        "wasiahmad/PolicyQA",
        "775538bc6d932e9d0dd16975d4373659cf8964fe",
        POLICYQA_PATHS,
        "MIT",
        120,
        load_policyqa,
    ),
    Source(
        "truthfulqa_law",
        "legal",
        TRUTHFULQA_REPO,
        TRUTHFULQA_COMMIT,
        (TRUTHFULQA_PATH,),
        "Apache-2.0",
        100,
        load_truthfulqa_law,
    ),
    Source(
        "mmlu_law",
        "legal",
        "hendrycks/test",
        "f112c7a259c48bc97cfca63fc0cf66235a5d9bcf",
        MMLU_LAW_PATHS,
        "MIT",
        70,
        load_mmlu_law,
    ),
    Source(
        "rule_qa",
        "legal",
        "HazyResearch/legalbench",
        "724cb4f5d9930787820f51a12011b20c7ec1d736",
        (RULE_QA_PATH,),
        "CC-BY-4.0",
        60,
        load_rule_qa,
    ),
    Source(
        "learned_hands",
        "legal",
        "loc110504/ACAL",
        "ffb0e6788339f5873f2d2c9ee48fe30d5d5fe8dd",
        LEARNED_HANDS_PATHS,
        "CC-BY-NC-SA-4.0 (Learned Hands via LegalBench)",
        60,
        load_learned_hands,
        names=True,
    ),
    Source(
        "avvo",
        "legal",
        "arian-askari/EF_in_Legal_CQA",
        "ad7b86650888c0fa145288551c3df6ac6f664559",
        (AVVO_PATH,),
        "none stated (README: cite Askari et al., ECIR 2022)",
        50,
        load_avvo,
    ),
    Source(
        "acid",
        "support",
        "AmFamMLTeam/ACID",
        "66bc5e0afa33495d8c61fba76b8c551af84bfa6e",
        ACID_PATHS,
        "none stated (README: cite Acharya & Fung 2020)",
        130,
        load_acid,
        names=True,
    ),
    Source(
        "multidogo",
        "support",
        "awslabs/multi-domain-goal-oriented-dialogues-dataset",
        "baa30639c4b271f394b81443c842193407cdf26d",
        MULTIDOGO_PATHS,
        "CDLA-Permissive-1.0",
        110,
        load_multidogo,
        names=True,
    ),
    Source(
        "rsics",
        "support",
        "negi-notes/contact-center",
        "7a6c465ed2891eb48f71444e55a2971e82d09261",
        RSICS_PATHS,
        "ODbL-1.0 + RSiCS terms (no re-identification; cite Beaver et al. 2017)",
        110,
        load_rsics,
        names=True,
    ),
)


# --- selection -----------------------------------------------------------------------------


def router_data_keys() -> set[str]:
    """Normalised texts of the repository's own router data, router/data/**/*.jsonl (never in the dev set)."""
    keys: set[str] = set()
    for path in sorted((REPO_ROOT / "router" / "data").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if isinstance(row.get("text"), str):
                keys.add(norm_key(row["text"]))
            for turn in row.get("history", []) or []:
                if isinstance(turn, dict) and isinstance(turn.get("content"), str):
                    keys.add(norm_key(turn["content"]))
    return keys


def stratified_sample(items: list[Candidate], cap: int, rng: random.Random) -> list[Candidate]:
    """Round-robin over strata (each shuffled by ``rng``) until ``cap`` items are taken."""
    strata: dict[str, list[Candidate]] = defaultdict(list)
    for item in items:
        strata[item.stratum].append(item)
    queues = []
    for name in sorted(strata):
        bucket = sorted(strata[name], key=lambda c: c.text)
        rng.shuffle(bucket)
        queues.append(bucket)
    rng.shuffle(queues)
    taken: list[Candidate] = []
    depth = 0
    while len(taken) < cap and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and len(taken) < cap:
                taken.append(queue[depth])
        depth += 1
    return taken


@dataclass
class SourceReport:
    source: Source
    loaded: int = 0
    eligible: int = 0
    kept: int = 0
    rejected: Counter[str] | None = None


def build(mirror: Path, seed: int) -> tuple[list[dict[str, str]], list[SourceReport]]:
    reports: list[SourceReport] = []
    eligible: dict[str, list[Candidate]] = {}
    domains_of_key: dict[str, set[str]] = defaultdict(set)
    excluded = router_data_keys()
    for source in SOURCES:
        snap = Snapshot(mirror, source.repo, source.commit)
        report = SourceReport(source, rejected=Counter())
        assert report.rejected is not None
        candidates = source.load(snap)
        report.loaded = len(candidates)
        seen: set[str] = set()
        keep: list[Candidate] = []
        for cand in candidates:
            reason = reject_reason(cand.text, names=source.names)
            if reason is None and "  " in cand.raw.strip():
                reason = "personal_data"  # ACID blanks removed numbers/names to double spaces
            if reason is None and source.cross_domain is not None and source.cross_domain.search(cand.text):
                reason = "other_domain_vocabulary"
            key = norm_key(cand.text)
            if reason is None and key in seen:
                reason = "duplicate"
            if reason is not None:
                report.rejected[reason] += 1
                continue
            seen.add(key)
            keep.append(cand)
            domains_of_key[key].add(source.domain)
        eligible[source.key] = keep
        reports.append(report)

    rows: list[dict[str, str]] = []
    taken_keys: set[str] = set()
    for source, report in zip(SOURCES, reports, strict=True):
        assert report.rejected is not None
        pool = []
        for cand in eligible[source.key]:
            key = norm_key(cand.text)
            if len(domains_of_key[key]) > 1:
                report.rejected["ambiguous_across_domains"] += 1
            elif key in taken_keys:
                report.rejected["duplicate_across_sources"] += 1
            else:
                pool.append(cand)
        report.eligible = len(pool)
        rng = random.Random(f"{seed}:{source.key}")
        chosen = []
        for cand in stratified_sample(pool, source.cap, rng):
            # Dropped after sampling, so that new training rows remove dev rows, not reshuffle them.
            if norm_key(cand.text) in excluded:
                report.rejected["in_router_data"] += 1
            else:
                chosen.append(cand)
        for cand in chosen:
            taken_keys.add(norm_key(cand.text))
            rows.append({"text": cand.text, "domain": source.domain, "source": source.key})
        report.kept = len(chosen)
    rows.sort(key=lambda r: (r["domain"], r["source"]))
    return rows, reports


def inside_repo(path: Path) -> bool:
    resolved = path.expanduser().resolve()
    root = REPO_ROOT.resolve()
    return resolved == root or root in resolved.parents


def write_jsonl(rows: Iterable[dict[str, str]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(out)


def print_report(rows: list[dict[str, str]], reports: list[SourceReport], out: Path) -> None:
    per_domain = Counter(r["domain"] for r in rows)
    per_source = Counter(r["source"] for r in rows)
    print(f"wrote {len(rows)} rows to {out}")
    print("\nper domain:")
    for domain in DOMAINS:
        n = per_domain[domain]
        sources = [rep for rep in reports if rep.source.domain == domain]
        top = max((per_source[rep.source.key] for rep in sources), default=0)
        share = top / n if n else 0.0
        flags = []
        if n < MIN_PER_DOMAIN:
            flags.append(f"below {MIN_PER_DOMAIN}")
        if share > MAX_SOURCE_SHARE:
            flags.append(f"largest source {share:.0%} > {MAX_SOURCE_SHARE:.0%}")
        note = f"  [warning: {'; '.join(flags)}]" if flags else ""
        print(f"  {domain:<8} {n:>4}  (largest source {share:.0%}){note}")
    print("\nper source:")
    print(f"  {'source':<19} {'domain':<8} {'loaded':>7} {'eligible':>8} {'kept':>5}  commit        rejected")
    for rep in reports:
        src = rep.source
        rejected = ", ".join(f"{k}={v}" for k, v in sorted((rep.rejected or Counter()).items()))
        print(
            f"  {src.key:<19} {src.domain:<8} {rep.loaded:>7} {rep.eligible:>8} {rep.kept:>5}  "
            f"{src.commit[:12]}  {rejected}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="root of the git snapshots")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSONL (outside the repository)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if inside_repo(args.out):
        print(f"refusing to write {args.out}: it is inside the repository {REPO_ROOT}", file=sys.stderr)
        return 2
    try:
        rows, reports = build(args.mirror, args.seed)
    except SnapshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_jsonl(rows, args.out)
    print_report(rows, reports, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
