"""Add agent tool outputs, clean and with planted instructions, to the labelled set (see ../eval/SOURCES.md).

Usage: `python agent_tools.py MIRRORS DATA` after `resplit.py MIRRORS DATA` (MIRRORS as for assemble.py: bare git
snapshots named `owner+name/repo`). Rewrites DATA/{train,dev,test}.jsonl: the rows this script added before (sources
starting with `AgentDojo` or `ASB`) are dropped and made again, every other row stays as it is. Deterministic.

Sources:
- AgentDojo (ethz-spylab/agentdojo, MIT; read from the snapshot of its fork sequrity-ai/agentdojo): the environments
  of its four suites, `src/agentdojo/data/suites/*/environment.yaml` (workspace: emails, calendar events, files;
  travel: hotels, restaurants, car rentals, flights; slack: messages, web pages; banking: transactions, bills,
  notices). Each record (an email, an event, a web page ...) is one tool output, rendered as a tool returns it (YAML,
  as AgentDojo's tools do, or JSON, chosen by a hash of the record). Clean: the injection vectors (`{name}` in the
  environment) at their defaults (`injection_vectors.yaml`): benign. Injected: one vector of the record carries an
  attack, the others their defaults: an injection goal of the suite (`GOAL` of its injection tasks, every version)
  in one of AgentDojo's attack templates (the strings with `{goal}` in `src/agentdojo/attacks`, `{user}` and
  `{model}` filled as its attacks fill them). Held out by suite: slack and banking wholly in test (their records,
  vectors and goals); workspace and travel in train and dev (records and goals by hash, 75 / 25 %).
- ASB, Agent Security Bench (agiresearch/ASB, MIT; read from the snapshot of Zhang-Henry/AIOS_agent, which holds its
  `data/`): each attacker instruction (`all_attack_tools.jsonl`, aggressive and not) planted after the result of a
  normal tool of the same agent (`all_normal_tools.jsonl`, its "Expected Achievements"), as its observation
  injection does: inside one of its attack prompts (naive, fake completion, escape characters, context ignoring,
  combined; read from `pyopenagi/agents/react_agent_attack.py`); the normal results alone as benign. Held out by
  source: wholly in test.
- Hard benign tool outputs: each NotInject prompt of a split (user channel) quoted inside an AgentDojo record of the
  same split, in a vector's place.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

AGENTDOJO = "sequrity-ai+agentdojo"
ASB = "Zhang-Henry+AIOS_agent"
SUITES = "src/agentdojo/data/suites"
SPLIT_OF_SUITE = {"workspace": None, "travel": None, "slack": "test", "banking": "test"}
OURS = ("AgentDojo", "ASB")
MARKER = "QQINJECTIONQQ"
VECTOR = re.compile(r"\{(\w+)\}")
# The user and model names AgentDojo's attacks write into `{user}` and `{model}` (its suites' user; its defaults).
NAMES = (("Emma Johnson", "GPT-4"), ("the user", "the AI language model"), ("Emma Johnson", "Claude"))
HARD = re.compile(
    r"ignor|disregard|forget|override|bypass|system prompt|instruction|act as|pretend|role ?play|jailbreak|"
    r"you are now|from now on|prompt|忽略|指令|提示|扮演|无视|忘记|规则",
    re.IGNORECASE,
)  # assemble.HARD (importing assemble would run it)
RANDOM = random.Random(12)


def git(mirrors: Path, repo: str, *args: str) -> str:
    command = ["git", "-C", str(mirrors / repo / "repo"), *args]
    return subprocess.run(command, check=True, capture_output=True).stdout.decode("utf-8-sig")


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def train_or_dev(text: str) -> str:
    return "train" if digest(text) % 4 else "dev"


def row(text: str, label: int, source: str, payload: str = "", lang: str = "en", hard: bool = False) -> dict[str, Any]:
    return {
        "text": text.strip(),
        "label": label,
        "category": "indirect" if label else "benign",
        "channel": "tool",
        "lang": lang,
        "source": source,
        "hard": bool(label == 0 and (hard or HARD.search(payload or text))),
        "payload": payload,
    }


def records(mirrors: Path, suite: str) -> tuple[list[Any], dict[str, str]]:
    """The suite's records (an email, an event, a file, a web page: `{key: value}`), each vector a `{name}` marker
    string inside, and the vectors' defaults."""

    def load(path: str) -> Any:
        text = VECTOR.sub(lambda match: f"{MARKER}{match[1]}{MARKER}", git(mirrors, AGENTDOJO, "show", f"HEAD:{path}"))
        return yaml.load(text, Loader)

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!include", lambda loader, node: load(f"{SUITES}/{suite}/{loader.construct_scalar(node)}"))
    environment = load(f"{SUITES}/{suite}/environment.yaml")
    vectors = yaml.safe_load(git(mirrors, AGENTDOJO, "show", f"HEAD:{SUITES}/{suite}/injection_vectors.yaml"))
    found: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                found.append(item) if isinstance(item, dict) else walk(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str) and (len(item) > 60 or MARKER in item):
                    found.append({key: item})  # a web page or a file: address and content
                else:
                    walk(item)

    walk(environment)
    return found, {name: str(vector["default"]) for name, vector in vectors.items()}


def fill(value: Any, texts: dict[str, str]) -> Any:
    """`value` with each vector marker replaced by its text in `texts`."""
    if isinstance(value, dict):
        return {key: fill(item, texts) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, texts) for item in value]
    if isinstance(value, str):
        return re.sub(f"{MARKER}(\\w+?){MARKER}", lambda match: texts[match[1]], value)
    return value


def render(record: Any, texts: dict[str, str]) -> str:
    """A record, its vectors filled from `texts`, as a tool returns it: YAML (AgentDojo's tools) or JSON, by a hash of
    the record (before filling, so a record keeps its format whatever its vectors hold)."""
    filled = fill(record, texts)
    if digest(repr(record)) % 3:
        return yaml.safe_dump(filled, sort_keys=False, allow_unicode=True, width=10**6)
    return json.dumps(filled, ensure_ascii=False, indent=2, default=str)


def planted(record: Any, defaults: dict[str, str], vector: str, text: str) -> tuple[str, str]:
    """The record rendered with `text` in `vector` (the others at their defaults), and `text` as it appears there."""
    whole = render(record, {**defaults, vector: text})
    prefix, suffix = render(record, {**defaults, vector: MARKER}).split(MARKER)
    return whole, whole[len(prefix) : len(whole) - len(suffix)]


def goals(mirrors: Path, suite: str) -> list[str]:
    """The `GOAL` strings of the suite's injection tasks, every version, f-strings filled from class constants."""
    names = git(mirrors, AGENTDOJO, "ls-tree", "-r", "--name-only", "HEAD", "src/agentdojo/default_suites").split()
    found: list[str] = []
    for name in sorted(name for name in names if name.endswith(f"/{suite}/injection_tasks.py")):
        for node in ast.walk(ast.parse(git(mirrors, AGENTDOJO, "show", f"HEAD:{name}"))):
            if not isinstance(node, ast.ClassDef):
                continue
            constants: dict[str, str] = {}
            for statement in node.body:
                if not (isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name)):
                    continue
                target, value = statement.targets[0].id, statement.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    constants[target] = value.value
                elif isinstance(value, ast.JoinedStr):
                    parts = [
                        part.value
                        if isinstance(part, ast.Constant)
                        else constants.get(part.value.id)
                        if isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name)
                        else None
                        for part in value.values
                    ]
                    if all(isinstance(part, str) for part in parts):
                        constants[target] = "".join(parts)  # type: ignore[arg-type]
            if "GOAL" in constants and constants["GOAL"] not in found:
                found.append(constants["GOAL"])
    return found


def templates(mirrors: Path) -> list[str]:
    """AgentDojo's attack strings that take only `{goal}`, `{user}` and `{model}`."""
    names = git(mirrors, AGENTDOJO, "ls-tree", "-r", "--name-only", "HEAD", "src/agentdojo/attacks").split()
    found: list[str] = []
    for name in sorted(names):
        tree = ast.parse(git(mirrors, AGENTDOJO, "show", f"HEAD:{name}"))
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                fields = set(VECTOR.findall(node.value))
                if "goal" in fields and fields <= {"goal", "user", "model"} and node.value not in found:
                    found.append(node.value)
    return found


def agentdojo(mirrors: Path, notinject: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "test": []}
    carriers: dict[str, list[tuple[str, Any, dict[str, str], str]]] = {split: [] for split in out}
    attacks = templates(mirrors)
    for suite, fixed in SPLIT_OF_SUITE.items():
        found, defaults = records(mirrors, suite)
        source = f"AgentDojo {suite}"
        for record in found:
            split = fixed or train_or_dev(repr(record))
            out[split].append(row(render(record, defaults), 0, f"{source} (clean)"))
            for vector in sorted(set(re.findall(f"{MARKER}(\\w+?){MARKER}", repr(record)))):
                carriers[split].append((source, record, defaults, vector))
        for goal in goals(mirrors, suite):
            split = fixed or train_or_dev(goal)
            ours = [carrier for carrier in carriers[split] if carrier[0] == source]
            for template in attacks:
                user, model = RANDOM.choice(NAMES)
                attack = template.format(goal=goal, user=user, model=model).strip()
                for _, record, defaults, vector in RANDOM.sample(ours, min(2, len(ours))):
                    text, payload = planted(record, defaults, vector, attack)
                    out[split].append(row(text, 1, source, payload.strip()))
    for split, prompts in notinject.items():
        for prompt in prompts:
            source, record, defaults, vector = RANDOM.choice(carriers[split])
            text, _ = planted(record, defaults, vector, prompt["text"])
            quoted = row(text, 0, f"{source} quoting {prompt['source']}", prompt["text"], prompt["lang"], True)
            out[split].append(quoted)
    return out


def asb_attacks(mirrors: Path) -> dict[str, ast.JoinedStr]:
    """ASB's observation-injection prompts by attack kind (`attack_prompts` of its attacking agent), unfilled."""
    tree = ast.parse(git(mirrors, ASB, "show", "HEAD:pyopenagi/agents/react_agent_attack.py"))
    found: dict[str, ast.JoinedStr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
            name, value = node.targets[0].attr, node.value
            if name == "injected_prompt" and isinstance(value, ast.JoinedStr):
                found[name] = value
            elif name == "attack_prompts" and isinstance(value, ast.Dict):
                for key, item in zip(value.keys, value.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(item, ast.JoinedStr):
                        found[key.value] = item
    return found


def asb_prompt(prompts: dict[str, ast.JoinedStr], kind: str, fields: dict[str, str]) -> str:
    """ASB's `kind` prompt filled: each `{self.NAME}` from `fields`, `{self.injected_prompt}` by its own prompt."""
    parts = []
    for part in prompts[kind].values:
        if isinstance(part, ast.Constant):
            parts.append(str(part.value))
        elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Attribute):
            name = part.value.attr
            parts.append(asb_prompt(prompts, name, fields) if name in prompts else fields[name])
    return "".join(parts)


def asb(mirrors: Path) -> list[dict[str, Any]]:
    def jsonl(path: str) -> list[dict[str, str]]:
        return [json.loads(line) for line in git(mirrors, ASB, "show", f"HEAD:{path}").splitlines() if line.strip()]

    prompts = asb_attacks(mirrors)
    kinds = sorted(name for name in prompts if name != "injected_prompt")
    normal: dict[str, list[str]] = {}
    out = []
    for tool in jsonl("data/all_normal_tools.jsonl"):
        normal.setdefault(tool["Corresponding Agent"], []).append(tool["Expected Achievements"])
        out.append(row(tool["Expected Achievements"], 0, "ASB (normal tool results)"))
    for attack in jsonl("data/all_attack_tools.jsonl"):
        result = RANDOM.choice(normal[attack["Corresponding Agent"]])
        fields = {"attack_instru": attack["Attacker Instruction"], "tool_name": attack["Attacker Tool"]}
        prompt = asb_prompt(prompts, RANDOM.choice(kinds), fields)
        kind = "aggressive" if attack["Aggressive"] == "True" else "non-aggressive"
        # As its agent returns an observation with an injected prompt: the tool's result, "; ", the prompt.
        out.append(row(f"{result}; {prompt}", 1, f"ASB ({kind})", prompt.strip()))
    return out


def kept_rows(data: Path, ours: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """DATA/{train,dev,test}.jsonl's rows but those whose source starts with one of `ours` (a script's own rows)."""
    return {
        split: [
            item
            for item in map(json.loads, (data / f"{split}.jsonl").open(encoding="utf-8"))
            if not item["source"].startswith(ours)
        ]
        for split in ("train", "dev", "test")
    }


def write_rows(data: Path, kept: dict[str, list[dict[str, Any]]], added: dict[str, list[dict[str, Any]]]) -> None:
    """Each split of DATA rewritten: its `kept` rows, then its `added` ones; what was added is printed."""
    for split, items in kept.items():
        with (data / f"{split}.jsonl").open("w", encoding="utf-8") as file:
            for item in items + added[split]:
                file.write(json.dumps(item, ensure_ascii=False) + "\n")
        new = added[split]
        positives = sum(item["label"] for item in new)
        benign = len(new) - positives
        print(f"{split}: {len(items)} rows kept; added {len(new)}: {positives} injections, {benign} benign")


def main() -> None:
    mirrors, data = Path(sys.argv[1]), Path(sys.argv[2])
    kept = kept_rows(data, OURS)
    notinject = {
        split: [item for item in items if item["channel"] == "user" and item["source"].startswith("NotInject_")]
        for split, items in kept.items()
    }
    added = agentdojo(mirrors, notinject)
    added["test"] += asb(mirrors)
    write_rows(data, kept, added)


if __name__ == "__main__":
    main()
