"""Loaders: every supported format read into documents, malformed input a typed error."""

from __future__ import annotations

import json

import pytest

from gecko.errors import DocumentLoadError
from gecko.plugins.knowledge import load_bytes, supported_suffixes


def pdf_bytes(*pages: str) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page (offsets computed, not copied)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        page_number = len(objects) + 1
        kids.append(f"{page_number} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {page_number + 1} 0 R "
            "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
        )
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content.decode()}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_text_and_markdown_are_decoded_as_utf8() -> None:
    [text] = load_bytes("notes.txt", "\ufeff报销政策 policy".encode())
    assert (text.text, text.format, text.source) == ("报销政策 policy", "text", "notes.txt")
    [markdown] = load_bytes("README.MD", b"# Title\nbody")
    assert markdown.format == "markdown"


def test_html_keeps_visible_text_in_blocks_and_drops_scripts() -> None:
    page = b"<html><head><title>T</title><script>var x = 1;</script></head><body><h1>Policy</h1><p>Pay in <b>30</b> days.</p><style>p{}</style></body></html>"  # noqa: E501
    [document] = load_bytes("page.html", page)
    assert document.text == "T\n\nPolicy\n\nPay in 30 days."


def test_pdf_gives_one_document_per_page() -> None:
    documents = load_bytes("policy.pdf", pdf_bytes("Travel is reimbursed in 30 days.", "Hotels cost 200 EUR."))
    assert [(d.text.strip(), d.metadata["page"]) for d in documents] == [
        ("Travel is reimbursed in 30 days.", 1),
        ("Hotels cost 200 EUR.", 2),
    ]


def test_a_broken_pdf_is_a_load_error() -> None:
    with pytest.raises(DocumentLoadError, match=r"policy\.pdf"):
        load_bytes("policy.pdf", b"%PDF-1.4 this is not a pdf")


def test_json_items_become_documents_with_their_fields_as_metadata() -> None:
    data = [{"text": "first", "lang": "en", "tags": ["a"], "nested": {"x": 1}}, "second", {"title": "no text"}]
    documents = load_bytes("items.json", json.dumps(data).encode())
    assert [d.text for d in documents] == ["first", "second", '{"title": "no text"}']
    assert dict(documents[0].metadata) == {"item": 0, "lang": "en", "tags": ["a"]}


def test_jsonl_lines_become_documents_and_a_bad_line_is_named() -> None:
    documents = load_bytes("rows.jsonl", b'{"content": "one"}\n\n{"content": "two", "year": 2024}\n')
    assert [(d.text, dict(d.metadata)) for d in documents] == [("one", {"line": 1}), ("two", {"line": 3, "year": 2024})]
    with pytest.raises(DocumentLoadError, match="line 2"):
        load_bytes("rows.jsonl", b'{"content": "one"}\n{oops\n')


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("image.png", b"\x89PNG", "unsupported file type '.png'"),
        ("latin1.txt", "café".encode("latin-1"), "not UTF-8"),
        ("bad.json", b"{", "invalid JSON"),
    ],
)
def test_bad_input_is_a_load_error_naming_the_file(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DocumentLoadError, match=message) as caught:
        load_bytes(name, data)
    assert name in str(caught.value)


def test_supported_suffixes_cover_the_formats() -> None:
    assert {".txt", ".md", ".html", ".pdf", ".json", ".jsonl"} <= set(supported_suffixes())
