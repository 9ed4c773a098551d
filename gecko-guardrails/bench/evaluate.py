"""Detection quality on the public labelled set (eval/SOURCES.md) at the shipped threshold, and time per check.

Run with `python gecko-guardrails/bench/evaluate.py [split] [--semantic] [--only SOURCE] [--without SOURCE]
[--by-source]` (default `test`, the held-out split; `dev` is the split the thresholds were chosen on; `--semantic`
measures the opt-in semantic mode, which needs `gecko-ai-guardrails[semantic]`; `--only` and `--without` keep or drop
the rows whose source starts with SOURCE, each repeatable; `--by-source` adds recall and false positives per source)
in an environment with gecko-ai-guardrails installed.
Prints recall per category and per channel, false positives on all and on hard benign texts per
channel, for the rules alone, the classifier alone and both (what `detect` does), and the CPU time
per check.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

from gecko_guardrails import detect

DATA = Path(__file__).parent.parent / "eval" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("split", nargs="?", default="test", choices=("train", "dev", "test"))
    parser.add_argument("--semantic", action="store_true", help="the opt-in semantic mode of the classifier")
    parser.add_argument("--only", action="append", default=[], help="keep rows whose source starts with this")
    parser.add_argument("--without", action="append", default=[], help="drop rows whose source starts with this")
    parser.add_argument("--by-source", action="store_true", help="recall and false positives per source too")
    options = parser.parse_args()
    split, semantic = options.split, options.semantic
    rows = [
        row
        for row in map(json.loads, (DATA / f"{split}.jsonl").open(encoding="utf-8"))
        if (not options.only or row["source"].startswith(tuple(options.only)))
        and not row["source"].startswith(tuple(options.without) or ("\0",))
    ]
    results = []
    cpu = []
    for row in rows:
        start = time.process_time()
        found = detect(row["text"], row["channel"], semantic=semantic)
        cpu.append(time.process_time() - start)
        rules = any(kind != "classifier" for kind in found.kinds)
        model = "classifier" in found.kinds
        results.append((row, {"rules": rules, "classifier": model, "both": bool(found)}))

    def rate(selected: list[tuple[dict[str, object], dict[str, bool]]], layer: str) -> str:
        if not selected:
            return "—"
        hits = sum(flags[layer] for _, flags in selected)
        return f"{hits / len(selected):.3f} ({hits}/{len(selected)})"

    groups: dict[str, list[tuple[dict[str, object], dict[str, bool]]]] = defaultdict(list)
    for row, flags in results:
        if options.by_source:
            groups[f"{'recall' if row['label'] else 'FP'}, source {row['source']}"].append((row, flags))
        if row["label"] == 1:
            groups[f"recall {row['category']}"].append((row, flags))
            groups[f"recall {row['category']}, {row['channel']}"].append((row, flags))
            groups[f"recall, {row['channel']} channel"].append((row, flags))
            groups["recall, all injections"].append((row, flags))
            if row["lang"] not in ("en", "en/de"):
                groups[f"recall, language {row['lang']}"].append((row, flags))
        else:
            groups[f"FP, all benign, {row['channel']} channel"].append((row, flags))
            if row["hard"]:
                groups[f"FP, hard benign, {row['channel']} channel"].append((row, flags))
                groups["FP, hard benign, all"].append((row, flags))
    print(f"split {split}, {'semantic' if semantic else 'default'} mode: {len(rows)} texts")
    print("| measure | rules | classifier | rules + classifier (shipped) |\n|---|---|---|---|")
    for name in sorted(groups):
        selected = groups[name]
        print(f"| {name} | {rate(selected, 'rules')} | {rate(selected, 'classifier')} | {rate(selected, 'both')} |")
    cpu.sort()
    lengths = sorted(len(row["text"]) for row in rows)
    print(
        f"CPU per check: median {cpu[len(cpu) // 2] * 1e3:.2f} ms, p95 {cpu[int(len(cpu) * 0.95)] * 1e3:.2f} ms, "
        f"mean {sum(cpu) / len(cpu) * 1e3:.2f} ms ({len(cpu) / sum(cpu):.0f} checks/s); "
        f"median text {lengths[len(lengths) // 2]} characters"
    )


if __name__ == "__main__":
    main()
