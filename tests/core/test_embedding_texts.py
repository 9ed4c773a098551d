"""`embedding_texts`: what every `Embedder.embed` accepts as its texts."""

from __future__ import annotations

import pytest

from gecko.plugins.models import embedding_texts


def test_a_sequence_of_texts_becomes_a_list_in_order() -> None:
    assert embedding_texts(("b", "a", "c")) == ["b", "a", "c"]
    assert embedding_texts([]) == []


def test_a_lone_string_is_refused_rather_than_embedded_character_by_character() -> None:
    with pytest.raises(TypeError, match="embed_query"):
        embedding_texts("one text")
