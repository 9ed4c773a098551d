"""Hostile file-based vector store URLs: a location that is not a usable directory, or an option the
backend does not take, is a typed storage error; without the backend installed, a PluginNotFoundError."""

from __future__ import annotations

import os
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


SERVER_FORM = {"chroma": "for a server use chroma+http://host:1234", "lancedb": "lancedb:///absolute/dir"}


@pytest.mark.parametrize(("scheme", "module"), [("chroma", "gecko_vector_chroma"), ("lancedb", "gecko_vector_lancedb")])
@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("host:1234/x", "names the host 'host:1234'"),
        ("host:1234/x", "{server}"),
        ("kb", "names the host 'kb'"),
        ("./%00x", "holds '\\x00'"),
        ("./x%0Ay", "holds '\\n'"),
        ("./%ff", "does not percent-decode to UTF-8 text"),
    ],
)
async def test_a_host_or_an_undecodable_path_is_refused_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str, module: str, location: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    installed = find_spec(module) is not None
    with pytest.raises(InvalidStorageURLError if installed else PluginNotFoundError) as caught:
        await create_storage(f"{scheme}://{location}", kind="vector")
    if installed:
        assert message.format(server=SERVER_FORM[scheme]) in str(caught.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("scheme", "module"), [("chroma", "gecko_vector_chroma"), ("lancedb", "gecko_vector_lancedb")])
async def test_a_percent_encoded_path_opens_the_decoded_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str, module: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if find_spec(module) is None:
        with pytest.raises(PluginNotFoundError):
            await create_storage(f"{scheme}://./my%20kb%2523", kind="vector")
        return
    async with await create_storage(f"{scheme}://./my%20kb%2523", kind="vector"):
        pass
    assert os.listdir(tmp_path) == ["my kb%23"]
