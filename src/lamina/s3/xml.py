"""S3's XML: rendering responses (namespace 2006-03-01) and parsing request documents. Pure.

Request documents are parsed with ElementTree after refusing DTDs (no entity expansion), and read
namespace-blind, since clients send them with and without S3's namespace.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Union
from xml.sax.saxutils import escape

from lamina.s3.errors import MalformedXML

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'

Node = Union[str, int, bool, None, "Element", list["Node"]]


class Element:
    """A tag with children: `Element("Name", "text")` or `Element("Parent", [Element(...), ...])`."""

    __slots__ = ("tag", "children")

    def __init__(self, tag: str, children: Node = None) -> None:
        self.tag = tag
        self.children = children


def _render(node: Node, out: list[str]) -> None:
    if node is None:
        return
    if isinstance(node, Element):
        out.append(f"<{node.tag}>")
        _render(node.children, out)
        out.append(f"</{node.tag}>")
    elif isinstance(node, list):
        for child in node:
            _render(child, out)
    elif isinstance(node, bool):
        out.append("true" if node else "false")
    else:
        out.append(escape(str(node)))


def document(root: str, children: Iterable[Node], namespace: bool = True) -> bytes:
    out = [HEADER, f'<{root} xmlns="{NS}">' if namespace else f"<{root}>"]
    _render(list(children), out)
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8", "surrogateescape")


def timestamp(epoch_s: float) -> str:
    """`2009-10-12T17:50:30.000Z`, as listings carry it."""
    t = dt.datetime.fromtimestamp(epoch_s, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def http_date(epoch_s: float) -> str:
    """`Wed, 12 Oct 2009 17:50:00 GMT`, as Last-Modified carries it."""
    t = dt.datetime.fromtimestamp(epoch_s, tz=dt.timezone.utc)
    return t.strftime("%a, %d %b %Y %H:%M:%S GMT")


# parsing -----------------------------------------------------------------------------------------

def parse(body: bytes) -> ET.Element:
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise MalformedXML()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedXML() from None
    for element in root.iter():
        if "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def text(element: ET.Element, path: str, default: str | None = None) -> str | None:
    found = element.find(path)
    if found is None:
        return default
    return found.text or ""
