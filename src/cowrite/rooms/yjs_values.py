"""The value of a Yjs document as JSON, root by root (what version history shows and compares).

A Yjs update does not say a root's type: the editor decides it when it names the root. So each
root's type is *inferred* from its content (``infer_types``): a root with keys is a ``map``; one
whose items read as text is ``text`` (``Y.Text``: plain text, formatting dropped); one holding
XML elements or XML texts is ``xml`` (``Y.XmlFragment``, in its ``toString`` form, as
``GET /yjs/roots/{root}?as=xml``); any other sequence is an ``array`` (JSON values). An empty
root has no type of its own: the caller passes ``hints`` (the types the current document shows),
else it reads as an empty ``text``. Each probe types a root for good, so each runs on a fresh
copy of the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pycrdt

RootType = Literal["text", "xml", "map", "array"]
TYPES: dict[str, type[Any]] = {
    "text": pycrdt.Text,
    "xml": pycrdt.XmlFragment,
    "map": pycrdt.Map,
    "array": pycrdt.Array,
}


def _is_yrs_error(exc: BaseException) -> bool:
    # pyo3 turns a Rust panic into ``PanicException``, a BaseException: bad input too.
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def doc_of(state: bytes) -> pycrdt.Doc[Any]:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.apply_update(state)
    return doc


def root_names(state: bytes) -> list[str]:
    return sorted(doc_of(state).keys())


def infer_type(state: bytes, name: str) -> RootType | None:
    """The type of root ``name`` in ``state``, read from its content (None: empty, or absent)."""
    try:
        if len(doc_of(state).get(name, type=pycrdt.Map)):
            return "map"
        if str(doc_of(state).get(name, type=pycrdt.Text)):
            return "text"
        items = list(doc_of(state).get(name, type=pycrdt.Array))
    except BaseException as exc:
        if not _is_yrs_error(exc):
            raise
        return None
    if not items:
        return None
    if any(isinstance(i, pycrdt.XmlElement | pycrdt.XmlText) for i in items):
        return "xml"
    return "array"


def infer_types(state: bytes, hints: Mapping[str, RootType] | None = None) -> dict[str, RootType]:
    """Every root of ``state`` with its type (inferred; else ``hints``; else ``text``)."""
    hints = hints or {}
    return {name: infer_type(state, name) or hints.get(name, "text") for name in root_names(state)}


def read(doc: pycrdt.Doc[Any], name: str, kind: RootType) -> Any:
    """Root ``name`` of ``doc`` as JSON (typing it as ``kind`` for good: use a copy)."""
    root = doc.get(name, type=TYPES[kind])
    if kind in ("text", "xml"):
        return str(root)
    return root.to_py()


def read_all(doc: pycrdt.Doc[Any], types: Mapping[str, RootType]) -> dict[str, Any]:
    """Every root of ``types`` as JSON (an absent root reads as its empty value)."""
    return {name: read(doc, name, kind) for name, kind in sorted(types.items())}


def value_of(
    state: bytes, hints: Mapping[str, RootType] | None = None
) -> tuple[dict[str, Any], dict[str, RootType]]:
    """The document ``state`` as JSON by root, and the type each root was read as."""
    types = infer_types(state, hints)
    return read_all(doc_of(state), types), types
