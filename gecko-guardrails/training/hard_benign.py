"""Assemble more hard benign training texts (injection words used innocently) from public repositories.

Usage: `python hard_benign.py MIRRORS OUT` (MIRRORS as for `assemble.py`: bare git snapshots named
`owner+name/repo`; OUT the folder holding `train.jsonl`, `dev.jsonl`, `test.jsonl`, which receives
`hard_benign.jsonl`). Rows have the layout of the splits (all benign, user channel, `hard` true) and are
for training only: a text already in any split (compared case- and space-folded) is left out, so none of
dev's or test's texts enters through here. Sources (see ../eval/SOURCES.md):
- Parapet-Tech/parapet `schema/eval/l1_holdout.yaml`: its benign prompts from UltraChat (MIT) and WildGuardMix
  (ODC-BY 1.0) that match `assemble.HARD` (not its awesome-chatgpt-prompts: "Act as ..." prompts taught the
  model that role prompts are benign, and it missed more jailbreaks);
- python/peps (public domain or CC0-1.0): sentences of 40 to 300 characters from the prose of the PEPs
  that match `assemble.HARD` and use at least two of `TRIGGERS` (NotInject's trigger words of its train and
  dev files, and "override", "prompt", ...), e.g. "The installer should have a way for the user to override
  these rules, such as a command-line flag --break-system-packages."
Deterministic: re-running gives the same file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import yaml

MIRRORS = Path(sys.argv[1])
OUT = Path(sys.argv[2])
# assemble.HARD (importing assemble would run it).
HARD = re.compile(
    r"ignor|disregard|forget|override|bypass|system prompt|instruction|act as|pretend|role ?play|jailbreak|"
    r"you are now|from now on|prompt|忽略|指令|提示|扮演|无视|忘记|规则",
    re.IGNORECASE,
)
TRIGGERS = re.compile(
    r"\b(above|activate|adversarial|affirm|allow|authorized|begin|break|bypass\w*|command|counter|customize|delete|"
    r"denoted|deviate|devoid|disregard\w*|enabled|enclose|enter|erase|everything|execute|exit|expressly|filtered|"
    r"forget|freed|hesitate|ignor\w*|illegal|initialize|initiating|instructions?|interrupt|jailbreak|must|obeyed|"
    r"offensive|override\w*|pause|policy|precede|prefixed|pretend|prior|prompts?|reckless|remember|restrictions?|"
    r"stipulations|stop|system|unauthorized|uncensored|unfiltered|unrestricted|unverified|user)\b",
    re.IGNORECASE,
)
PARAPET_SOURCES = {
    "ultrachat conversation": "UltraChat (MIT)",
    "WildGuardMix label=unharmful": "WildGuardMix (ODC-BY 1.0)",
}


def git(repo: str, *args: str) -> str:
    command = ["git", "-C", str(MIRRORS / repo / "repo"), *args]
    return subprocess.run(command, check=True, capture_output=True).stdout.decode("utf-8-sig")


def key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def parapet() -> list[tuple[str, str]]:
    found = []
    for item in yaml.safe_load(git("Parapet-Tech+parapet", "show", "HEAD:schema/eval/l1_holdout.yaml")):
        name = item["description"].split(":", 1)[-1].strip()
        text = item["content"].strip()
        if item["label"] == "benign" and name in PARAPET_SOURCES and HARD.search(text) and len(text) <= 3000:
            found.append((text, f"{PARAPET_SOURCES[name]} via Parapet-Tech/parapet"))
    return found


def peps() -> list[tuple[str, str]]:
    names = git("python+peps", "ls-tree", "-r", "HEAD", "--name-only").split()
    found = []
    for name in sorted(name for name in names if re.fullmatch(r"peps/pep-\d+\.rst", name)):
        for paragraph in re.split(r"\n\s*\n", git("python+peps", "show", f"HEAD:{name}")):
            # Prose only: no indented (code, quoted) blocks, directives, literal blocks or section underlines.
            underlined = re.match(r"[=\-~^*#]{3}", paragraph.split("\n")[-1])
            if paragraph.startswith((" ", "\t", ".. ", "::")) or paragraph.endswith("::") or underlined:
                continue
            for sentence in re.split(r"(?<=[.?!])\s+(?=[A-Z])", " ".join(paragraph.split())):
                sentence = re.sub(r":\w+:`([^`<]*)(?:<[^>]*>)?`", r"\1", sentence).replace("``", "")
                if not 40 <= len(sentence) <= 300 or "`" in sentence or "|" in sentence:
                    continue
                if len({match.lower() for match in TRIGGERS.findall(sentence)}) >= 2 and HARD.search(sentence):
                    found.append((sentence, "python/peps"))
    return found


def main() -> None:
    seen = set()
    for split in ("train", "dev", "test"):
        for line in (OUT / f"{split}.jsonl").open(encoding="utf-8"):
            row = json.loads(line)
            seen.update(key(text) for text in (row["text"], row["payload"]) if text)
    with (OUT / "hard_benign.jsonl").open("w", encoding="utf-8") as file:
        for text, source in parapet() + peps():
            if key(text) in seen:
                continue
            seen.add(key(text))
            row = {
                "text": text,
                "label": 0,
                "category": "benign",
                "channel": "user",
                "lang": "en",
                "source": source,
                "hard": True,
                "payload": "",
            }
            file.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
