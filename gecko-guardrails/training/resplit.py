"""Re-split the assembled set so the tool channel's documents and NotInject's hard benign prompts are stratified.

Usage: `python resplit.py MIRRORS DATA` after `assemble.py MIRRORS DATA` (MIRRORS as there; only microsoft/BIPIA
is read, to know each context's kind). Rewrites DATA/{train,dev,test}.jsonl in place. Deterministic.

Why: assemble.py splits two sources by file, and the files differ in kind. NotInject's files differ in the number
of trigger words per prompt (one: train, two: dev, three: test), and BIPIA's context pools differ in what they
hold (train and dev: 60 % tables, 8 % of dev's hard benign tool results inside code; test: 35 % code, 24 %
tables). A threshold chosen on the dev/out-of-fold pool then meets, on test, documents and phrasings it never saw
(README, Measured). Here, per kind, the items are ordered by a hash of their text and cut at fixed fractions:
- BIPIA contexts, per kind (email, code, table): 48 % train, 16 % dev, 36 % test (the old sizes' proportions);
- NotInject prompts, per file (one, two, three): a third each to train, dev and test; the prompt as user input
  and the tool result quoting it go to the same split.
Every tool result is rebuilt as assemble.py builds it (the same inserted text, at a start, middle or end
position, into a context of its new split, cut at 3,000 characters). What stays held out by source: BIPIA's
test attacks (its own attack split), Giskard, JBB benign, jailbreak_llms websites, promptshield; the other
sources keep their splits.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from documents import insert

SPLITS = ("train", "dev", "test")
CONTEXT_SHARE = (0.48, 0.16)
RANDOM = random.Random(18)


def order(texts: list[str]) -> list[str]:
    return sorted(texts, key=lambda text: hashlib.sha256(text.encode()).hexdigest())


def cut(texts: list[str], shares: tuple[float, float]) -> dict[str, str]:
    """Each text's split: the hash-ordered `texts` cut at `shares` (train, dev; the rest test)."""
    ordered = order(texts)
    a, b = round(len(ordered) * shares[0]), round(len(ordered) * (shares[0] + shares[1]))
    return {text: "train" if index < a else "dev" if index < b else "test" for index, text in enumerate(ordered)}


def kinds(mirrors: Path) -> dict[str, str]:
    """BIPIA's contexts (as assemble.py cuts them, at 6,000 and at 3,000 characters) → email, code or table."""
    git = mirrors / "microsoft+BIPIA" / "repo"
    found = {}
    for kind in ("email", "code", "table"):
        for split in ("train", "test"):
            path = f"benchmark/{kind}/{split}.jsonl"
            lines = subprocess.run(["git", "-C", str(git), "show", f"HEAD:{path}"], check=True, capture_output=True)
            for line in lines.stdout.decode("utf-8-sig").splitlines():
                context = json.loads(line)["context"]
                context = "\n".join(context) if isinstance(context, list) else context
                found[context[:6000].strip()] = found[context[:3000].strip()] = kind
    return found


def main() -> None:
    mirrors, data = Path(sys.argv[1]), Path(sys.argv[2])
    rows = {split: [json.loads(line) for line in (data / f"{split}.jsonl").open(encoding="utf-8")] for split in SPLITS}
    kind_of = kinds(mirrors)
    every = [row for split in SPLITS for row in rows[split]]
    contexts = [row for row in every if row["channel"] == "tool" and not row["payload"]]
    by_kind: dict[str, list[str]] = {}
    for row in contexts:
        by_kind.setdefault(kind_of[row["text"].strip()], []).append(row["text"])
    context_split = {text: split for texts in by_kind.values() for text, split in cut(texts, CONTEXT_SHARE).items()}
    notinject: dict[str, list[str]] = {}
    for row in every:
        if row["channel"] == "user" and row["source"].startswith("NotInject"):
            notinject.setdefault(row["source"], []).append(row["text"])
    prompt_split = {text: split for texts in notinject.values() for text, split in cut(texts, (1 / 3, 1 / 3)).items()}

    out: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for split in SPLITS:
        for row in rows[split]:
            if row["channel"] == "tool" and not row["payload"]:
                out[context_split[row["text"]]].append(row)
            elif row["channel"] == "user" and row["text"] in prompt_split:
                out[prompt_split[row["text"]]].append(row)
            elif row["channel"] != "tool":
                out[split].append(row)
    pools = {split: order([row["text"] for row in out[split] if row["channel"] == "tool"]) for split in SPLITS}
    for split in SPLITS:
        for row in rows[split]:
            if row["channel"] == "tool" and row["payload"]:
                new = prompt_split.get(row["payload"].strip(), split)
                text = insert(RANDOM.choice(pools[new])[:3000], row["payload"], RANDOM)
                out[new].append({**row, "text": text.strip()})
    for split in SPLITS:
        with (data / f"{split}.jsonl").open("w", encoding="utf-8") as file:
            for row in out[split]:
                file.write(json.dumps(row, ensure_ascii=False) + "\n")
        positives = sum(row["label"] for row in out[split])
        print(f"{split}: {len(out[split])} rows, {positives} injections, {len(out[split]) - positives} benign")


if __name__ == "__main__":
    main()
