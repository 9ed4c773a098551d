"""Assemble the labelled injection set from public repositories (see ../eval/SOURCES.md).

Usage: `python assemble.py MIRRORS OUT` where MIRRORS holds bare git snapshots named `owner+name/repo`
(the repositories listed in SOURCES.md) and OUT receives `train.jsonl`, `dev.jsonl`, `test.jsonl`.
Every row: text, label (1 injection, 0 benign), category (direct, indirect, jailbreak,
obfuscated, multilingual, benign), channel (user, tool), lang, source, hard (benign texts that
use the words injections use: all of NotInject, and any benign text matching `HARD`), payload.
Splits are by source where a source is large enough to stand alone; XSafety rows are split by
row number, so every translation of one prompt lands in the same split. Deterministic: re-running gives the same files.
Then `resplit.py` stratifies NotInject's prompts and BIPIA's documents over the three splits (see there).
"""

from __future__ import annotations

import base64
import codecs
import csv
import io
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from documents import insert

MIRRORS = Path(sys.argv[1])
OUT = Path(sys.argv[2])
RANDOM = random.Random(18)
HARD = re.compile(
    r"ignor|disregard|forget|override|bypass|system prompt|instruction|act as|pretend|role ?play|jailbreak|"
    r"you are now|from now on|prompt|忽略|指令|提示|扮演|无视|忘记|规则",
    re.IGNORECASE,
)
rows: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "test": []}


def show(repo: str, path: str) -> str:
    git = MIRRORS / repo / "repo"
    return subprocess.run(
        ["git", "-C", str(git), "show", f"HEAD:{path}"], check=True, capture_output=True
    ).stdout.decode("utf-8-sig")


def add(
    split: str, text: str, label: int, category: str, channel: str, lang: str, source: str, payload: str = ""
) -> None:
    """One row; `payload` is the inserted text when a row puts one text inside a tool result."""
    text = text.strip()
    if not text:
        return
    hard = bool(label == 0 and (source.startswith("NotInject") or HARD.search(payload or text)))
    rows[split].append(
        {
            "text": text,
            "label": label,
            "category": category,
            "channel": channel,
            "lang": lang,
            "source": source,
            "hard": hard,
            "payload": payload,
        }
    )


def by_fraction(items: list[Any], train: float, dev: float) -> tuple[list[Any], list[Any], list[Any]]:
    items = list(items)
    RANDOM.shuffle(items)
    a, b = int(len(items) * train), int(len(items) * (train + dev))
    return items[:a], items[a:b], items[b:]


def parapet(name: str) -> list[str]:
    data = yaml.safe_load(show("Parapet-Tech+parapet", f"schema/eval/{name}.yaml"))
    return [item["content"] for item in data if isinstance(item.get("content"), str)]


# --- direct injections, user channel ---------------------------------------------------------
for text in parapet("opensource_deepset_attacks"):
    add("train", text, 1, "direct", "user", "en/de", "deepset/prompt-injections")
for text in parapet("opensource_deepset_benign"):
    add("train", text, 0, "benign", "user", "en/de", "deepset/prompt-injections")
train, dev, _ = by_fraction(parapet("opensource_gandalf_attacks"), 0.7, 0.3)
for split, texts in (("train", train), ("dev", dev)):
    for text in texts:
        add(split, text, 1, "direct", "user", "en", "Lakera/gandalf_ignore_instructions")
# Mosscap (prompts from a password-guarding game) is split by item: held out whole, it measured 0.32 recall,
# the other sources teach no password-extraction phrasing.
train, dev, test = by_fraction(parapet("opensource_mosscap_attacks"), 0.4, 0.2)
for split, texts in (("train", train), ("dev", dev), ("test", test[:400])):
    for text in texts:
        add(split, text, 1, "direct", "user", "en", "Lakera/mosscap_prompt_injection")
giskard = list(csv.DictReader(io.StringIO(show("Giskard-AI+prompt-injections", "prompt_injections.csv"))))
for item in giskard:
    category = "jailbreak" if item["group"] == "Jailbreak" else "direct"
    add("test", item["prompt"], 1, category, "user", "en", "Giskard-AI/prompt-injections")
for text in parapet("opensource_jbb_benign"):
    add("test", text, 0, "benign", "user", "en", "JailbreakBench/JBB-Behaviors (benign)")

# --- jailbreaks: in-the-wild prompts, split by platform -------------------------------------------
jailbreaks = list(
    csv.DictReader(
        io.StringIO(
            show("yunwei37+satml-llmail-injection", "data/jailbreak_human_set2/jailbreak_prompts_2023_12_25.csv")
        )
    )
)
seen: set[str] = set()
unique = []
for item in jailbreaks:
    key = item["prompt"][:200]
    if key not in seen and len(item["prompt"]) <= 6000:
        seen.add(key)
        unique.append(item)
community = [item["prompt"] for item in unique if item["platform"] in ("discord", "reddit")]
websites = [item["prompt"] for item in unique if item["platform"] not in ("discord", "reddit")]
RANDOM.shuffle(community)
RANDOM.shuffle(websites)
for text in community[:300]:
    add("train", text, 1, "jailbreak", "user", "en", "verazuo/jailbreak_llms (discord, reddit)")
for text in community[300:400]:
    add("dev", text, 1, "jailbreak", "user", "en", "verazuo/jailbreak_llms (discord, reddit)")
for text in websites[:200]:
    add("test", text, 1, "jailbreak", "user", "en", "verazuo/jailbreak_llms (websites)")

# --- XSafety: goal hijacking in ten languages, benign commonsense questions ---------------------
XSAFETY = "Jarviswang94+Multilingual_safety_benchmark"
LANGS = {"en": "_n", "zh": "", "de": "", "fr": "", "sp": "", "ru": "", "ja": "", "ar": "", "hi": ""}
for lang, suffix in LANGS.items():
    for name, label in (("Goal_Hijacking", 1), ("commonsense", 0)):
        path = f"{lang}/{name}{suffix if name != 'commonsense' else ''}.csv"
        texts = [line[0] for line in csv.reader(io.StringIO(show(XSAFETY, path))) if line and line[0].strip()]
        for index, text in enumerate(texts):
            split = "train" if index % 10 < 6 else "dev" if index % 10 < 8 else "test"
            category = "benign" if label == 0 else "direct" if lang == "en" else "multilingual"
            add(split, text, label, category, "user", lang, f"XSafety {name}")

# --- hard benign prompts (trigger words used innocently): NotInject, by file ----------------------
for number, split in (("one", "train"), ("two", "dev"), ("three", "test")):
    for item in json.loads(show("leolee99+InjecGuard", f"datasets/NotInject_{number}.json")):
        lang = "zh" if re.search(r"[\u4e00-\u9fff]", item["prompt"]) else "en"
        add(split, item["prompt"], 0, "benign", "user", lang, f"NotInject_{number}")

# --- benign prompts, some adversarially phrased: WildGuardMix's benign sample shipped with InjecGuard --------
train, dev, test = by_fraction(
    [item["prompt"] for item in json.loads(show("leolee99+InjecGuard", "datasets/wildguard.json"))], 0.6, 0.2
)
for split, texts in (("train", train), ("dev", dev), ("test", test)):
    for text in texts:
        add(split, text, 0, "benign", "user", "en", "WildGuardMix benign (InjecGuard)")

# --- benign instructions: Alpaca seed tasks ------------------------------------------------------
for line in show("tatsu-lab+stanford_alpaca", "seed_tasks.jsonl").splitlines():
    task = json.loads(line)
    text = task["instruction"] + ("\n" + task["instances"][0]["input"] if task["instances"][0]["input"] else "")
    add("train", text, 0, "benign", "user", "en", "stanford_alpaca seed_tasks")

# --- tool channel: BIPIA contexts, clean and with BIPIA's attacks inserted -----------------------
BIPIA = "microsoft+BIPIA"


def contexts(task: str, split: str) -> list[str]:
    found = [json.loads(line)["context"] for line in show(BIPIA, f"benchmark/{task}/{split}.jsonl").splitlines()]
    return ["\n".join(item) if isinstance(item, list) else item for item in found]


def attacks(name: str) -> list[str]:
    return [text for texts in json.loads(show(BIPIA, f"benchmark/{name}.json")).values() for text in texts]


email_train, email_test = contexts("email", "train"), contexts("email", "test")
code_train, code_test = contexts("code", "train"), contexts("code", "test")
table_test = contexts("table", "test")
table_train = contexts("table", "train")
RANDOM.shuffle(table_train)
train_contexts, dev_contexts, _ = by_fraction(email_train + code_train[:100] + table_train[:150], 0.75, 0.25)
test_contexts = email_test + code_test[:60] + table_test[:40]
for split, pool in (("train", train_contexts), ("dev", dev_contexts), ("test", test_contexts)):
    for text in pool:
        add(split, text[:6000], 0, "benign", "tool", "en", f"BIPIA {split} contexts")
for split, names, pool in (
    ("train", ("text_attack_train", "code_attack_train"), train_contexts),
    ("test", ("text_attack_test", "code_attack_test"), test_contexts),
):
    found = [attack for name in names for attack in attacks(name)]
    if split == "train":
        train_attacks, dev_attacks, _ = by_fraction(found, 0.75, 0.25)
        for attack in train_attacks:
            add(
                "train",
                insert(RANDOM.choice(train_contexts)[:3000], attack, RANDOM),
                1,
                "indirect",
                "tool",
                "en",
                "BIPIA",
                attack,
            )
        for attack in dev_attacks:
            add(
                "dev",
                insert(RANDOM.choice(dev_contexts)[:3000], attack, RANDOM),
                1,
                "indirect",
                "tool",
                "en",
                "BIPIA",
                attack,
            )
    else:
        for attack in found:
            add(
                "test", insert(RANDOM.choice(pool)[:3000], attack, RANDOM), 1, "indirect", "tool", "en", "BIPIA", attack
            )

# Direct and multilingual injections of each split, also arriving inside a tool result (an email).
for split, pool in (("train", train_contexts), ("dev", dev_contexts), ("test", test_contexts)):
    carried = [row for row in rows[split] if row["label"] == 1 and row["category"] in ("direct", "multilingual")]
    for row in RANDOM.sample(carried, min(len(carried), 150)):
        add(
            split,
            insert(RANDOM.choice(pool)[:3000], row["text"], RANDOM),
            1,
            row["category"],
            "tool",
            row["lang"],
            row["source"] + " inside a BIPIA context",
            row["text"],
        )

# Hard benign prompts (NotInject) quoted inside a tool result: the tool channel's hard negatives.
for split, pool in (("train", train_contexts), ("dev", dev_contexts), ("test", test_contexts)):
    for row in [row for row in rows[split] if row["source"].startswith("NotInject")]:
        add(
            split,
            insert(RANDOM.choice(pool)[:3000], row["text"], RANDOM),
            0,
            "benign",
            "tool",
            row["lang"],
            row["source"] + " inside a BIPIA context",
            row["text"],
        )

# --- obfuscated: public obfuscation samples, and test injections run through common encodings -----
for path in ("encoding_obfuscation/attacks.json", "encoding/obfuscation.json", "token_smuggling/attacks.json"):
    for item in json.loads(show("Neural-alchemy+promptshield", f"openclay/shields/attack_db/{path}")):
        add(
            "test",
            item.get("text") or item["prompt"],
            1,
            "obfuscated",
            "user",
            "en",
            "Neural-alchemy/promptshield attack_db",
        )
HOMOGLYPHS = str.maketrans({"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "i": "\u0456"})
ENCODINGS = {
    "base64": lambda text: base64.b64encode(text.encode()).decode(),
    "rot13": lambda text: codecs.encode(text, "rot13"),
    "spacing": lambda text: " ".join(text),
    "homoglyphs": lambda text: text.translate(HOMOGLYPHS),
    "zero-width": lambda text: "\u200b".join(text),
}
# Encoded: held-out injections that are unambiguous (XSafety and Giskard; the Mosscap game prompts are often
# plain questions about a password), so this category measures the decoding, not the base recall.
short = [
    row
    for row in rows["test"]
    if row["label"] == 1
    and row["category"] == "direct"
    and row["channel"] == "user"
    and len(row["text"]) < 300
    and not row["source"].startswith("Lakera")
]
for row in RANDOM.sample(short, min(len(short), 100)):
    name = RANDOM.choice(sorted(ENCODINGS))
    add("test", ENCODINGS[name](row["text"]), 1, "obfuscated", "user", "en", f"{row['source']} ({name})")

OUT.mkdir(parents=True, exist_ok=True)
for split, items in rows.items():
    with (OUT / f"{split}.jsonl").open("w", encoding="utf-8") as file:
        for item in items:
            file.write(json.dumps(item, ensure_ascii=False) + "\n")
    positives = sum(item["label"] for item in items)
    print(f"{split}: {len(items)} rows, {positives} injections, {len(items) - positives} benign")
