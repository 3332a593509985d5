"""Build the public dev set for the routing gate: real, human-written requests from public data.

For model selection only (choosing between gate configurations, encoders, thresholds). It is
never used for training or threshold fitting, and the rows are never committed: the script
writes them outside the repository (default ``/work/router-dev/public_dev.jsonl``) and refuses
any output path inside it. See docs/router-public-dev.md.

Every source is a public GitHub repository read from a git snapshot at a **pinned commit**
(``git --git-dir=<mirror>/<owner>+<name>/repo[/.git] show <sha>:<path>``); nothing is
downloaded here. Get the snapshots first (the ``fetch`` tool of the dev environment puts them
under ``/work/.mirror``), then run, from the repository root::

    python3 -m bench.router_public_dev [--mirror /work/.mirror] [--out /work/router-dev/public_dev.jsonl]

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

import sys

from bench.public_dev.build import main

if __name__ == "__main__":
    sys.exit(main())
