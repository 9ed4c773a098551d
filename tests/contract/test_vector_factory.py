"""`create_storage` opens vector stores by scheme; `memory://` serves both contracts; errors are typed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.util import find_spec

import pytest

from gecko.cli import main
from gecko.errors import InvalidStorageURLError, PluginLoadError, PluginNotFoundError, StorageUnavailableError
from gecko.plugins.storage import Storage, StorageURL
from gecko.plugins.storage.factory import create_storage
from gecko.plugins.storage.memory import MemoryStorage
from gecko.plugins.vector import VectorRecord, VectorStore, local_path, vector_registry

pytestmark = pytest.mark.anyio


class RegisteredVectors(MemoryStorage):
    """A vector store registered at run time under its own scheme (a KV store too, by inheritance)."""

    scheme = "testvectors"


@pytest.fixture
def registered() -> Iterator[None]:
    unregister = vector_registry.register("testvectors", RegisteredVectors)
    yield
    unregister()


async def test_memory_serves_key_value_and_vectors_from_one_store() -> None:
    async with await create_storage("memory://") as store:
        assert isinstance(store, Storage)
        assert isinstance(store, VectorStore)
        await store.set("session", {"turn": 1})
        docs = store.collection("docs")
        await docs.upsert([VectorRecord("a", [1.0, 0.0], "你好", {"lang": "zh"})])
        [hit] = await docs.query([1.0, 0.1], where={"lang": "zh"})
        assert (hit.id, hit.text) == ("a", "你好")
        assert await store.get("session") == {"turn": 1}
        assert await store.list_keys() == ["session"]
    assert store.closed


async def test_kind_selects_the_contract_for_memory() -> None:
    vectors = await create_storage("memory://", kind="vector")
    kv = await create_storage("memory://", kind="kv")
    assert isinstance(vectors, VectorStore)
    assert isinstance(kv, Storage)
    await vectors.close()
    await kv.close()


async def test_vector_only_scheme_opens_a_vector_store(registered: None) -> None:
    store = await create_storage("testvectors://")
    assert type(store) is RegisteredVectors
    await store.close()


async def test_vector_scheme_where_a_key_value_store_is_needed_is_refused(registered: None) -> None:
    with pytest.raises(InvalidStorageURLError, match="opens a vector store; a key-value store is needed"):
        await create_storage("testvectors://", kind="kv")


async def test_key_value_scheme_where_a_vector_store_is_needed_is_not_found() -> None:
    with pytest.raises(PluginNotFoundError, match="vector store scheme 'sqlite'"):
        await create_storage("sqlite:///./x.db", kind="vector")


@pytest.mark.parametrize(
    ("scheme", "distribution", "module"),
    [
        ("chroma", "gecko-ai-vector-chroma", "gecko_vector_chroma"),
        ("chroma+http", "gecko-ai-vector-chroma", "gecko_vector_chroma"),
        ("lancedb", "gecko-ai-vector-lancedb", "gecko_vector_lancedb"),
    ],
)
async def test_missing_vector_plugin_names_the_install_line(
    scheme: str, distribution: str, module: str, tmp_path: object
) -> None:
    url = "chroma+http://127.0.0.1:9" if scheme == "chroma+http" else f"{scheme}://{tmp_path}/db"
    if find_spec(module) is None:
        for kind in (None, "vector"):
            with pytest.raises(PluginNotFoundError, match=f"pip install {distribution}"):
                await create_storage(url, kind=kind)  # type: ignore[call-overload]
    elif scheme == "chroma+http":  # installed (tests_all): the plugin is found and reports the absent server
        with pytest.raises(StorageUnavailableError):
            await create_storage(url)
    else:  # installed beside the core (tests_all): the same call opens it
        store = await create_storage(url)
        assert isinstance(store, VectorStore)
        await store.close()


@pytest.mark.parametrize("url", ["nosuchscheme://x", "nosuchscheme+http://h:1"])
async def test_unknown_scheme_is_not_found(url: str) -> None:
    with pytest.raises(PluginNotFoundError, match="nosuchscheme"):
        await create_storage(url)


@pytest.mark.parametrize("url", ["chroma:./db", "Chroma://./db", "", "://x"])
async def test_malformed_url_is_rejected(url: str) -> None:
    with pytest.raises(InvalidStorageURLError):
        await create_storage(url)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("chroma://./my_knowledge_db", "./my_knowledge_db"),
        ("lancedb:///srv/kb?x=1", "/srv/kb"),
        ("c://../kb", "../kb"),
        ("c://.", "."),
        ("c://./my%20kb/100%25", "./my kb/100%"),
    ],
)
def test_local_path_is_what_follows_the_scheme_percent_decoded(url: str, path: str) -> None:
    assert local_path(StorageURL.parse(url)) == path


@pytest.mark.parametrize(
    ("url", "server_scheme", "message"),
    [
        ("chroma://host:1234/x", "chroma+http", "names the host 'host:1234'"),
        ("chroma://host:1234/x", "chroma+http", "for a server use chroma+http://host:1234"),
        ("chroma://user:hunter2@host/x", "chroma+http", "for a server use chroma+http://host"),
        ("lancedb://host/x", None, "lancedb://./relative/dir or lancedb:///absolute/dir"),
        ("c://kb", None, "names the host 'kb'"),
        ("c://~/kb", None, "names the host '~'"),
        ("c://.hidden/kb", None, "names the host '.hidden'"),
        ("c://user@./kb", None, "names the host '.'"),
    ],
)
def test_local_path_refuses_a_host(url: str, server_scheme: str | None, message: str) -> None:
    with pytest.raises(InvalidStorageURLError) as caught:
        local_path(StorageURL.parse(url), server_scheme=server_scheme)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert ("for a server use" in str(caught.value)) == (server_scheme is not None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("c://./%00", "holds '\\x00'"),
        ("c:///a%0Ab", "holds '\\n'"),
        ("c://./%ff", "does not percent-decode to UTF-8 text"),
        ("c://./%ED%A0%80", "does not percent-decode to UTF-8 text"),
    ],
)
def test_local_path_refuses_a_path_that_decodes_to_no_usable_directory(url: str, message: str) -> None:
    with pytest.raises(InvalidStorageURLError) as caught:
        local_path(StorageURL.parse(url))
    assert "its path" in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize("url", ["chroma://", "lancedb://?ann_threshold=5"])
def test_local_path_must_name_a_directory(url: str) -> None:
    with pytest.raises(InvalidStorageURLError, match="names no directory"):
        local_path(StorageURL.parse(url))


def test_registry_rejects_what_is_not_a_vector_store() -> None:
    with pytest.raises(PluginLoadError, match="must be a VectorStore subclass"):
        vector_registry.register("notvectors", object)
    with pytest.raises(PluginLoadError, match="declares scheme 'testvectors'"):
        vector_registry.register("othername", RegisteredVectors)


def test_gecko_plugins_lists_the_vector_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    vector_rows = {row["name"]: row for row in rows if row["kind"] == "vector"}
    assert vector_rows["memory"]["status"] == "builtin"
    for scheme, module in (("chroma", "gecko_vector_chroma"), ("lancedb", "gecko_vector_lancedb")):
        if find_spec(module) is not None:
            assert vector_rows[scheme]["status"] == "loaded"
            assert vector_rows[scheme]["distribution"] == f"gecko-ai-vector-{scheme}"
        else:
            assert scheme not in vector_rows
