"""One loader per public source: the candidates it offers, with their labels (see build.py)."""

from __future__ import annotations

import csv
import html
import io
import json
import pickle
import re
from collections import defaultdict
from collections.abc import Callable

from bench.public_dev.snapshot import Candidate, Snapshot
from bench.public_dev.text import clean

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
