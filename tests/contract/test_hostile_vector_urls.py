"""Hostile file-based vector store URLs: a location that is not a usable directory, or an option the
backend does not take, is a typed storage error; without the backend installed, a PluginNotFoundError."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from gecko.errors import InvalidStorageURLError, PluginNotFoundError, StorageError
from gecko.plugins.storage.factory import create_storage

OPTIONS_REFUSED = {
    "chroma": "chroma:// takes no options, got ['distance']",
    "lancedb": "the only option is ann_threshold=<positive integer>",
}


@pytest.mark.parametrize(("scheme", "module"), [("chroma", "gecko_vector_chroma"), ("lancedb", "gecko_vector_lancedb")])
@pytest.mark.parametrize(
    ("location", "error", "message"),
    [
        ("./file", StorageError, "cannot open {scheme} store './file'"),
        ("./file/below", StorageError, "cannot open {scheme} store './file/below'"),
        ("./kb?distance=l2", InvalidStorageURLError, "{options}"),
        ("", InvalidStorageURLError, "'{scheme}://' names no directory"),
    ],
)
async def test_unusable_vector_locations_are_typed_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    module: str,
    location: str,
    error: type[Exception],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("not a directory")
    installed = find_spec(module) is not None
    with pytest.raises(error if installed else PluginNotFoundError) as caught:
        await create_storage(f"{scheme}://{location}", kind="vector")
    if installed:
        assert message.format(scheme=scheme, options=OPTIONS_REFUSED[scheme]) in str(caught.value)
