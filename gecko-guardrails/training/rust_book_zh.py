"""Add Chinese hard benign texts (injection words used innocently) from the Chinese Rust book to the labelled set.

Usage: `python rust_book_zh.py MIRRORS DATA` after `garak.py MIRRORS DATA` (MIRRORS as for assemble.py: bare git
snapshots named `owner+name/repo`). Rewrites DATA/{train,dev,test}.jsonl: the rows this script added before (source
starting with `KaiserY/trpl-zh-cn`) are dropped and made again, every other row stays as it is. Deterministic.

Source: KaiserY/trpl-zh-cn (MIT; the community's Chinese translation of "The Rust Programming Language"),
`src/*.md`: the prose paragraphs (no code block, heading, table, quote marker or link list) of 40 to 600 characters
that hold one of the Chinese words `HARD` looks for (忽略 "ignore", 提示 "prompt", 规则 "rules", 指令, 忘记 ...),
as retrieved documentation (tool channel), and their sentences of 20 to 300 characters holding such a word, as
user input. All benign and hard. By paragraph (a paragraph and its sentences in one split), ordered by hash:
train 50 %, dev 20 %, test 30 %.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from agent_tools import HARD, digest, git, kept_rows, write_rows

REPO = "KaiserY+trpl-zh-cn"
SOURCE = "KaiserY/trpl-zh-cn"
CHINESE = re.compile(r"忽略|指令|提示|扮演|无视|忘记|规则")
SENTENCE = re.compile("[^\u3002\uff01\uff1f]+[\u3002\uff01\uff1f]?")  # up to an ideographic full stop, fullwidth ! or ?
PROSE = re.compile(r"^[^\s#`|<>\[{*-]")  # a paragraph that starts as prose: not a heading, fence, table, tag, list


def paragraphs(mirrors: Path) -> list[str]:
    """The book's prose paragraphs holding a Chinese trigger word, in file order, without duplicates."""
    names = git(mirrors, REPO, "ls-tree", "-r", "--name-only", "HEAD", "src").split()
    found: list[str] = []
    for name in sorted(name for name in names if name.endswith(".md")):
        text = re.sub(r"```.*?```", "", git(mirrors, REPO, "show", f"HEAD:{name}"), flags=re.DOTALL)
        for block in re.split(r"\n\s*\n", text):
            block = block.strip()
            if PROSE.match(block) and 40 <= len(block) <= 600 and CHINESE.search(block) and block not in found:
                found.append(block)
    return found


def row(text: str, channel: str) -> dict[str, Any]:
    return {
        "text": text,
        "label": 0,
        "category": "benign",
        "channel": channel,
        "lang": "zh",
        "source": SOURCE,
        "hard": bool(HARD.search(text)),
        "payload": "",
    }


def split_of(text: str) -> str:
    share = digest(text) % 10
    return "train" if share < 5 else "dev" if share < 7 else "test"


def main() -> None:
    mirrors, data = Path(sys.argv[1]), Path(sys.argv[2])
    kept = kept_rows(data, (SOURCE,))
    added: dict[str, list[dict[str, Any]]] = {split: [] for split in kept}
    for paragraph in paragraphs(mirrors):
        split = split_of(paragraph)
        added[split].append(row(paragraph, "tool"))
        for sentence in SENTENCE.findall(paragraph):
            if 20 <= len(sentence.strip()) <= 300 and CHINESE.search(sentence):
                added[split].append(row(sentence.strip(), "user"))
    write_rows(data, kept, added)


if __name__ == "__main__":
    main()
