"""Restore of a Yjs document: the one update that takes the current document to an old value.

Nothing is rewritten: the update is computed on a copy of the current document, in one pycrdt
transaction, by editing each root until it reads as it did at the version (``rooms/yjs_values``):
a text gets the character insertions and deletions of its diff (inserted text keeps the old
formatting); an XML fragment and an array get their changed children replaced (top-level
paragraphs of an editor's fragment, array items), copied whole from the old version with their
attributes and formatting; a map gets each changed key set again (or deleted). A root the old
version did not have is emptied (a Yjs root cannot be removed). The server then applies the
update like a client's, so it is stored before anyone hears of it, broadcast to every Yjs
client, and, being one update, undone as one step by restoring the version before it.

Known limits: formatting changed on text that is otherwise unchanged is not restored (only
characters are compared); a text embed is not copied.
"""

from __future__ import annotations

from typing import Any

import pycrdt

from cowrite.rooms.yjs_diff import opcodes, tokens
from cowrite.rooms.yjs_values import TYPES, RootType, doc_of, read


def _byte(text: str, pos: int) -> int:
    return len(text[:pos].encode("utf-8", "surrogatepass"))


def _fill_text(target: Any, source: Any) -> None:
    """Give the (integrated, empty) text ``target`` the chunks of ``source`` with formatting."""
    at = 0
    for chunk, attrs in source.diff():
        if isinstance(chunk, str) and chunk:
            target.insert(at, chunk, attrs or {})  # {}: inherit nothing
            at += len(chunk.encode("utf-8", "surrogatepass"))


def _copy(value: Any) -> Any:
    """A prelim copy of a value read from another document (texts filled by ``_fill``)."""
    if isinstance(value, pycrdt.XmlElement):
        view: Any = value.attributes
        return pycrdt.XmlElement(value.tag, dict(view), [_copy(c) for c in value.children])
    if isinstance(value, pycrdt.XmlText):
        return pycrdt.XmlText()
    if isinstance(value, pycrdt.Text):
        return pycrdt.Text()
    if isinstance(value, pycrdt.Map):
        return pycrdt.Map({k: _copy(v) for k, v in value.items()})
    if isinstance(value, pycrdt.Array):
        return pycrdt.Array([_copy(v) for v in value])
    return value


def _fill(target: Any, source: Any) -> None:
    """After integrating ``_copy(source)`` as ``target``: its texts get their content."""
    if isinstance(source, pycrdt.XmlText | pycrdt.Text):
        _fill_text(target, source)
    elif isinstance(source, pycrdt.XmlElement):
        for t, s in zip(target.children, source.children, strict=True):
            _fill(t, s)
    elif isinstance(source, pycrdt.Map):
        for key, s in source.items():
            _fill(target[key], s)
    elif isinstance(source, pycrdt.Array):
        for t, s in zip(target, source, strict=True):
            _fill(t, s)


def _restore_text(root: Any, old: Any) -> None:
    current, wanted = str(root), str(old)
    attrs: list[dict[str, Any]] = []
    for chunk, a in old.diff():
        if isinstance(chunk, str):
            attrs.extend([a or {}] * len(chunk))  # {}: plain (None would inherit)
    # later changes first: earlier positions stay valid
    for tag, i1, i2, j1, j2 in reversed(opcodes(list(current), list(wanted))):
        if tag == "equal":
            continue
        if i2 > i1:
            del root[_byte(current, i1) : _byte(current, i2)]
        at = _byte(current, i1)
        j = j1
        while j < j2:
            k = j
            while k < j2 and attrs[k] == attrs[j]:
                k += 1
            root.insert(at, wanted[j:k], attrs[j])
            at += len(wanted[j:k].encode("utf-8", "surrogatepass"))
            j = k


def _restore_children(children: Any, wanted: list[Any], kind: RootType) -> None:
    """Replace the children (XML nodes, array items) that differ by copies of ``wanted``."""

    def key(item: Any) -> Any:
        if kind == "xml":
            return str(item)
        return tokens("array", [item.to_py() if hasattr(item, "to_py") else item])[0]

    current = [key(c) for c in children]
    target = [key(c) for c in wanted]
    for tag, i1, i2, j1, j2 in reversed(opcodes(current, target)):
        if tag == "equal":
            continue
        if i2 > i1:
            del children[i1:i2]
        for n, source in enumerate(wanted[j1:j2]):
            integrated = children.insert(i1 + n, _copy(source))
            if integrated is None:
                integrated = children[i1 + n]
            _fill(integrated, source)


def _restore_map(root: Any, old: Any) -> None:
    wanted = dict(old.items())
    for key in [k for k in root if k not in wanted]:
        del root[key]
    for key, value in wanted.items():
        now = root.get(key)
        same = (now.to_py() if hasattr(now, "to_py") else now) == (
            value.to_py() if hasattr(value, "to_py") else value
        )
        if key in root and same:
            continue
        root[key] = _copy(value)
        _fill(root[key], value)


def restore_update(current: bytes, target: bytes, types: dict[str, RootType]) -> bytes | None:
    """The update that gives the document whose state is ``current`` the value of ``target``
    (every root of ``types``); None when they read the same already."""
    doc = doc_of(current)
    old = doc_of(target)
    before = doc.get_state()
    changed = False
    with doc.transaction():
        for name, kind in sorted(types.items()):
            if read(doc_of(current), name, kind) == read(doc_of(target), name, kind):
                continue
            changed = True
            root = doc.get(name, type=TYPES[kind])
            source = old.get(name, type=TYPES[kind])
            if kind == "text":
                _restore_text(root, source)
            elif kind == "map":
                _restore_map(root, source)
            elif kind == "xml":
                _restore_children(root.children, list(source.children), kind)
            else:
                _restore_children(root, list(source), kind)
    return doc.get_update(before) if changed else None
