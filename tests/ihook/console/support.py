"""Helpers of the console's tests: an HTML check with the stdlib's parser, and a
browser-like client that keeps cookies and posts forms with their CSRF token."""

from __future__ import annotations

import base64
import shlex
from html.parser import HTMLParser

from tests.conftest import ADMIN_TOKEN

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
"""Elements with no end tag."""
FIELDS = {"input", "select", "textarea"}
"""Elements that need a label (hidden inputs and buttons excepted)."""


class Page(HTMLParser):
    """A page parsed with the stdlib: its tag structure, fields, labels and hidden values."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.fields: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.ids: list[str] = []
        self.hidden: dict[str, str] = {}
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()
        if self.stack:
            self.problems.append(f"left open: {self.stack}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.append(a["id"] or "")
        if tag == "label" and a.get("for"):
            self.label_for.add(a["for"] or "")
        if tag == "input" and a.get("type") == "hidden":
            self.hidden[a.get("name") or ""] = a.get("value") or ""
        elif tag in FIELDS and a.get("type") not in ("submit", "button"):
            self.fields.append(a)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def unlabelled(self) -> list[dict[str, str | None]]:
        """Fields with no ``<label for=…>`` naming their id."""
        return [f for f in self.fields if not f.get("id") or f["id"] not in self.label_for]

    def check(self) -> Page:
        """Assert the page is well formed, its ids unique and every field labelled."""
        assert not self.problems, self.problems
        assert len(self.ids) == len(set(self.ids)), sorted(self.ids)
        assert not self.unlabelled(), self.unlabelled()
        return self


class Console:
    """A Flask test client used like a browser: cookies kept, forms posted with their CSRF."""

    def __init__(self, http, prefix: str = ""):
        self.http = http
        self.prefix = prefix

    def url(self, path: str) -> str:
        return f"{self.prefix}/ui{path}"

    def get(self, path: str, **kwargs):
        return self.http.get(self.url(path), **kwargs)

    def page(self, path: str, status: int = 200) -> tuple[str, Page]:
        """GET a page, check its status and HTML, and answer its text and parse."""
        answer = self.get(path)
        assert answer.status_code == status, (path, answer.status_code, answer.headers)
        html = answer.get_data(as_text=True)
        return html, Page(html).check()

    def csrf(self, path: str = "/sign-in") -> str:
        """The CSRF token of the form on ``path``."""
        return Page(self.get(path).get_data(as_text=True)).hidden["csrf_token"]

    def post(self, path: str, data: dict | None = None, *, csrf: str | None = "page", **kwargs):
        """POST a form; the CSRF token read from the dashboard (or sign-in page) unless given."""
        form = dict(data or {})
        if csrf == "page":
            csrf = self.csrf("/" if self.signed_in() else "/sign-in")
        if csrf is not None:
            form["csrf_token"] = csrf
        return self.http.post(self.url(path), data=form, **kwargs)

    def signed_in(self) -> bool:
        return self.get("/").status_code == 200

    def sign_in(self, token: str = ADMIN_TOKEN):
        return self.post("/sign-in", {"token": token}, csrf=self.csrf())


def parse_curl(command: str) -> tuple[str, dict[str, str], str | None]:
    """The URL, headers (``-u`` as a Basic ``Authorization``) and body of the ``curl -i -X
    POST`` command an endpoint's page shows, read as a shell would."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:4] == ["curl", "-i", "-X", "POST"], words
    headers: dict[str, str] = {}
    body = None
    rest = iter(words[5:])
    for word in rest:
        if word == "-H":
            name, value = next(rest).split(": ", 1)
            headers[name] = value
        elif word == "-u":
            headers["Authorization"] = "Basic " + base64.b64encode(next(rest).encode()).decode()
        elif word == "--data-raw":
            body = next(rest)
    return words[4], headers, body
