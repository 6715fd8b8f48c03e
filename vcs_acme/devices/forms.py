"""Reading the forms of a device's web pages: inputs found by their label text, never by name.

Field names on VCS and Expressway pages are not documented and may change between releases,
while the labels are what Cisco's guides quote ("Select the server certificate file"). So a
file input is found through ``<label for=id>`` text, and its ``name`` read from the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    file_inputs: dict[str, str] = field(default_factory=dict)  # id -> name
    buttons: list[str] = field(default_factory=list)  # submit button values


@dataclass
class Page:
    forms: list[Form] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # id -> label text
    links: dict[str, str] = field(default_factory=dict)  # link text -> href
    messages: list[tuple[str, str]] = field(default_factory=list)  # (class, text)
    cells: dict[str, str] = field(default_factory=dict)  # table header -> value

    def form_with_button(self, button: str) -> Form | None:
        return next((f for f in self.forms if button in f.buttons), None)

    def field_for_label(self, form: Form, label: str) -> str | None:
        """The ``name`` of the file input in ``form`` whose label reads ``label``."""
        wanted = " ".join(label.split()).casefold()
        for input_id, name in form.file_inputs.items():
            text = self.labels.get(input_id, "")
            if " ".join(text.split()).casefold() == wanted:
                return name
        return None

    def errors(self) -> list[str]:
        return [text for kind, text in self.messages if "error" in kind.split()]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._label_for: str | None = None
        self._link: str | None = None
        self._message: str | None = None
        self._header: str | None = None
        self._capture: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.page.forms.append(Form(values.get("action", "")))
        elif tag == "input":
            self._input(values)
        elif tag in ("label", "a", "p", "th", "td", "div", "span"):
            self._open(tag, values)

    def _input(self, values: dict[str, str]) -> None:
        if not self.page.forms:
            return
        form = self.page.forms[-1]
        kind = values.get("type", "text").lower()
        if kind == "hidden" and values.get("name"):
            form.hidden[values["name"]] = values.get("value", "")
        elif kind == "file":
            form.file_inputs[values.get("id", "")] = values.get("name", "")
        elif kind == "submit":
            form.buttons.append(values.get("value", ""))

    def _open(self, tag: str, values: dict[str, str]) -> None:
        if tag == "label":
            self._label_for = values.get("for", "")
        elif tag == "a":
            self._link = values.get("href", "")
        elif tag in ("p", "div", "span") and values.get("class"):
            self._message = values["class"]
        elif tag == "td" and self._header is None:
            return
        self._in = tag
        self._capture = []

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self._capture.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != self._in:
            return
        text = " ".join("".join(self._capture).split())
        if tag == "label" and self._label_for is not None:
            self.page.labels[self._label_for] = text
        elif tag == "a" and self._link is not None:
            self.page.links[text] = self._link
        elif tag in ("p", "div", "span") and self._message:
            self.page.messages.append((self._message, text))
        elif tag == "th":
            self._header = text
        elif tag == "td" and self._header is not None:
            self.page.cells[self._header] = text
            self._header = None
        self._in = None
        self._label_for = self._link = self._message = None


def parse(text: str) -> Page:
    parser = _Parser()
    parser.feed(text)
    parser.close()
    return parser.page
