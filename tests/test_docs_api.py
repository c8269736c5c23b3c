"""The rendered API reference (``make docs``, pdoc) builds, and every local link in it resolves to
an existing page and anchor."""

from __future__ import annotations

import importlib.util
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]


class _Links(HTMLParser):
    """The hrefs and the ids of a page (script bodies are not parsed as tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag in ("a", "link") and attrs.get("href") is not None:
            self.hrefs.append(attrs["href"])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def broken_links(out: Path) -> list[str]:
    pages = {p.resolve(): _parse(p) for p in out.rglob("*.html")}
    broken = []
    for page, links in pages.items():
        for href in links.hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            where = f"{page.relative_to(out.resolve())}: {href}"
            if not target.exists():
                broken.append(f"{where} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{where} (no such anchor)")
    return broken


def test_api_reference_builds_and_its_links_resolve(tmp_path):
    pytest.importorskip("pdoc")
    spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
    build_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_api)
    pages = build_api.build(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in pages}
    assert {"index.html", "qrnn_qiskit.html", "qrnn_qiskit/nn.html"} <= names
    nn_page = (tmp_path / "qrnn_qiskit" / "nn.html").read_text(encoding="utf-8")
    assert 'id="QRNN.param_groups"' in nn_page and 'id="QRNN.forward"' in nn_page
    assert broken_links(tmp_path) == []
