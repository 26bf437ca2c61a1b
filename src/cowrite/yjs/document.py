"""``YjsDocument``: the document-kind face of a Yjs document held with pycrdt.

Client updates are untrusted. :meth:`YjsDocument.apply_client_update` first applies one to a *twin*
(a second ``pycrdt.Doc`` kept equal to the real one) and checks it there: it must decode, and it
must integrate completely (no struct and no deletion left waiting for a dependency we do not have).
Only then is it applied to the real document; what it changed (the transaction's own update, never
the client's bytes) is what the caller stores and broadcasts. A refused update reaches neither the
real document nor the log; the twin is rebuilt from the real document after a refusal.

Updates from other instances or from the store (:meth:`merge_update`, :meth:`load`) were validated
by whoever stored them; they are merged idempotently and in any order, but they are checked on the
twin too: the part whose dependencies have not arrived waits in a queue of ours until they have,
so the real document never holds Yrs "pending" structs (Yrs 0.28 does not always integrate them
once the gap is filled, and snapshots would silently drop them). What integrates is applied at
once.

Caller's contract: every method raises only :class:`YjsProtocolError` for bad input (codes
``invalid_update``, ``invalid_state_vector``, ``missing_dependencies``, ``limit``); the document is
unchanged after any raise.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pycrdt

from cowrite.yjs.lib0 import Decoder, Encoder, YjsProtocolError
from cowrite.yjs.surrogates import Parsed, SurrogateIndex, may_hold_astral, parse
from cowrite.yjs.ydoc import FastDoc

U64 = (1 << 64) - 1
EMPTY_UPDATE = b"\x00\x00"
# Yrs clocks are u32: a state vector entry this large covers every struct of a client.
_ALL_CLOCKS = (1 << 32) - 1
_PARSE_OWN_BELOW = 64 * 1024
"""Updates up to this size are read in Python when they must be (``_parsed``)."""


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    max_update_bytes: int = 8 * 1024 * 1024
    # Refuse client updates once the document (as estimated below) would be larger than this.
    max_document_bytes: int = 64 * 1024 * 1024
    # Updates from other instances / the store that wait for their dependencies.
    max_waiting_updates: int = 1024


class MissingDependencies(YjsProtocolError):
    """The update refers to structs the document does not have (the client is out of sync with
    us: answer with a sync step 1 so it sends a complete step 2)."""

    def __init__(self, reason: str) -> None:
        super().__init__("missing_dependencies", reason)


def _is_yrs_error(exc: BaseException) -> bool:
    # pyo3 turns a Rust panic into ``PanicException``, a BaseException: treat it as bad input too.
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def decode_state_vector(sv: bytes) -> dict[int, int]:
    """Decode ``varUint(n) • n x (varUint(client) • varUint(clock))``; raises YjsProtocolError."""
    dec = Decoder(sv)
    try:
        n = dec.read_var_uint()
        if n * 2 > dec.remaining():
            raise YjsProtocolError("invalid_state_vector", f"state vector claims {n} entries")
        out: dict[int, int] = {}
        for _ in range(n):
            client = dec.read_var_uint(10, U64)
            out[client] = dec.read_var_uint(10, U64)
        dec.expect_end("state vector")
    except YjsProtocolError as exc:
        raise YjsProtocolError("invalid_state_vector", exc.reason) from None
    return out


def encode_state_vector(sv: dict[int, int]) -> bytes:
    enc = Encoder().write_var_uint(len(sv))
    for client, clock in sv.items():
        enc.write_var_uint(client).write_var_uint(clock)
    return enc.to_bytes()


def _check_update_header(update: bytes) -> None:
    """Cheap sanity checks before Yrs sees the bytes: counts that cannot fit in the input are
    refused here, so a lying count never turns into a large reservation."""
    n = len(update)
    if n > 2 and update[0] < 0x80 and update[1] < 0x80:  # one-byte counts (a keystroke)
        clients, structs = update[0], update[1]
        if clients * 3 <= n - 1 and (not clients or structs <= n - 2):
            return
    dec = Decoder(update)
    try:
        clients = dec.read_var_uint(10, U64)
        if clients * 3 > dec.remaining():
            raise YjsProtocolError("invalid_update", f"update claims {clients} clients")
        if clients:
            structs = dec.read_var_uint(10, U64)
            if structs > dec.remaining():
                raise YjsProtocolError("invalid_update", f"update claims {structs} structs")
    except YjsProtocolError as exc:
        raise YjsProtocolError("invalid_update", exc.reason) from None


def _delete_set(update: bytes, sv: dict[int, int]) -> list[tuple[int, int, int]]:
    """The delete set of ``update`` as (client, clock, length), read after filtering every struct
    out with a state vector that covers all of ``sv``'s clients (Yrs keeps the full delete set in
    a diff). Returns ``[]``... only if the diff indeed has no structs left."""
    rest = pycrdt.get_update(update, encode_state_vector(dict.fromkeys(sv, _ALL_CLOCKS)))
    dec = Decoder(rest)
    if dec.read_var_uint(10, U64) != 0:
        raise MissingDependencies("update has structs of unknown clients")
    out: list[tuple[int, int, int]] = []
    for _ in range(dec.read_var_uint(10, U64)):
        client = dec.read_var_uint(10, U64)
        for _ in range(dec.read_var_uint(10, U64)):
            clock = dec.read_var_uint(10, U64)
            out.append((client, clock, dec.read_var_uint(10, U64)))
    return out


def _fresh_doc(state: bytes | None = None) -> pycrdt.Doc[Any]:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    if state is not None:
        doc.apply_update(state)
    return doc


class YjsDocument:
    """One Yjs document (see the module docstring for what is validated and when)."""

    def __init__(self, limits: DocumentLimits | None = None) -> None:
        self.limits = limits or DocumentLimits()
        self._doc = _fresh_doc()
        self._fast = FastDoc(self._doc)
        """The same document, for the calls made on every update (``ydoc.py``)."""
        self._twin = FastDoc()
        self._captured: list[bytes] = []
        self._waiting: list[bytes] = []
        self._unobserve = self._twin.observe_updates(self._captured.append)
        self._surrogates = SurrogateIndex()
        self._clocks: dict[int, int] | None = {}
        """The twin's state vector, kept up to date per update (decoding the whole vector for
        every update costs O(clients ever seen): milliseconds for a long-lived document), or
        None after an update that was not read in Python (``_twin_clocks`` reads it back)."""
        # Bytes of the last snapshot/load plus every update since: an upper bound of the encoded
        # size, exact again after encode_snapshot().
        self.size_estimate = 0

    @classmethod
    def load(
        cls,
        snapshot: bytes | None,
        log_updates: Iterable[bytes] = (),
        limits: DocumentLimits | None = None,
    ) -> YjsDocument:
        """A document from a stored snapshot and the log entries after it (any order)."""
        doc = cls(limits)
        if snapshot:
            doc.merge_update(snapshot)
        for update in log_updates:
            doc.merge_update(update)
        return doc

    # --- reading --------------------------------------------------------------------------

    def state_vector(self) -> bytes:
        """Our state vector (the payload of a sync step 1)."""
        return self._doc.get_state()

    def diff(self, state_vector: bytes) -> bytes:
        """What a peer at ``state_vector`` lacks (the payload of a sync step 2)."""
        decode_state_vector(state_vector)
        try:
            return self._doc.get_update(state_vector)
        except BaseException as exc:
            if not _is_yrs_error(exc):
                raise
            raise YjsProtocolError("invalid_state_vector", str(exc)[:200]) from None

    def encode_snapshot(self) -> bytes:
        """The whole document as one update (what a snapshot stores), with the merged updates
        still waiting for their dependencies (``merge_update``): a snapshot replaces the log
        entries they came in, so leaving them out would lose them."""
        state = self._doc.get_update()
        if self._waiting:
            state = compact([state, *self._waiting])
        self.size_estimate = len(state)
        return state

    def covers(self, update: bytes) -> bool:
        """Whether ``update`` adds nothing to the document (every struct and deletion is known).
        Used for read-only Hocuspocus clients: their step 2 is acknowledged when it does."""
        try:
            _check_update_header(update)
            sv = decode_state_vector(self.state_vector())
            rest = pycrdt.get_update(update, self.state_vector())
            if Decoder(rest).read_var_uint(10, U64) != 0:
                return False
            ours = _delete_set(self._doc.get_update(), sv)
            theirs = _delete_set(update, sv)
        except BaseException as exc:
            if not _is_yrs_error(exc):
                raise
            return False
        return _ranges_cover(ours, theirs)

    # --- writing --------------------------------------------------------------------------

    def apply_client_update(self, update: bytes) -> bytes | None:
        """Validate and apply an update from a client.

        Returns what it changed, as an update to store and broadcast, or ``None`` when it
        brought nothing new. Raises ``invalid_update`` (does not decode), ``missing_dependencies``
        (would leave structs or deletions pending) or ``limit``; the document is then unchanged.
        """
        if len(update) > self.limits.max_update_bytes:
            raise YjsProtocolError(
                "limit", f"update of {len(update)} bytes (limit {self.limits.max_update_bytes})"
            )
        surrogates = self._surrogates
        parsed = None
        if surrogates.highs or may_hold_astral(update):  # (else it cannot split a pair)
            parsed = self._parsed(update)
            split = surrogates.split(update, parsed)
            if split is not None:  # Yrs would hold something else than the client's
                raise YjsProtocolError("unsupported_update", f"{split}: splits a surrogate pair")
        effective = self._apply_complete(update, self.limits.max_document_bytes, parsed)
        if effective is not None:
            # Yrs' encoding of a keystroke is usually the client's own: then it was read already
            surrogates.add(effective, parsed if effective == update else None)
            if self._waiting:
                self._drain_waiting()
        return effective

    def merge_update(self, update: bytes) -> bool:
        """Merge an update from the store or another instance (validated when it was accepted).

        Idempotent and order-free: what integrates now is applied; the part whose dependencies
        have not arrived (what Yrs would keep "pending") waits in a queue of ours and is applied
        as soon as they have (Yrs does not always integrate its pending structs once the gap is
        filled: see docs/yjs.md). Returns ``False`` when something waits. Raises
        ``invalid_update`` for bytes that do not decode, ``limit`` when more than
        ``max_waiting_updates`` wait (the caller should then reload the document from the store).
        """
        effective, rest = self._apply_partial(update)
        if effective is not None:
            self._surrogates.add(effective)
        if rest is not None and rest not in self._waiting:
            if len(self._waiting) >= self.limits.max_waiting_updates:
                raise YjsProtocolError("limit", "too many updates wait for dependencies")
            self._waiting.append(rest)
        if effective is not None:
            self._drain_waiting()
        return rest is None

    @property
    def waiting(self) -> int:
        """Merged updates (parts) still waiting for their dependencies."""
        return len(self._waiting)

    def _drain_waiting(self) -> None:
        progress = True
        while progress and self._waiting:
            progress = False
            for i, update in enumerate(list(self._waiting)):
                try:
                    effective, rest = self._apply_partial(update)
                except YjsProtocolError:  # pragma: no cover - it decoded when it was parked
                    effective, rest = None, None
                if effective is not None:
                    self._surrogates.add(effective)
                self._waiting[i] = rest if rest is not None else b""
                progress = progress or effective is not None or rest is None
            self._waiting = [u for u in self._waiting if u]

    def _check_on_twin(
        self, update: bytes, parsed: Parsed | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """Apply ``update`` to the twin; return (what integrated, the part that did not, or
        ``None`` when everything did). The twin holds what integrated; the caller must rebuild
        it when a part did not (Yrs keeps that part pending inside it). ``parsed``: what
        ``_parsed`` read of ``update``, if the caller read it (else it is read here when Yrs'
        encoding differs from the client's, or by Yrs for a large one)."""
        if parsed is None:  # (a parsed update was read whole: its counts fit its bytes)
            _check_update_header(update)
        self._captured.clear()
        twin = self._twin
        try:
            twin.apply_update(update)
            if self._captured == [update]:
                # Yrs' own update of the transaction is the client's, byte for byte: every
                # struct and every deletion integrated (what waits is left out of it), so the
                # twin's clocks are the old ones or the update's. (A keystroke from Yjs or Yrs
                # encodes the same: this reads neither the update nor the twin's vector.)
                clocks = self._clocks
                if parsed is None or clocks is None:
                    self._clocks = None  # read back from the twin when needed
                else:
                    for client, end in parsed.ends.items():
                        if end > clocks.get(client, 0):
                            clocks[client] = end
                return update, None
            if parsed is None:
                parsed = self._parsed(update)
            own = parsed.ends if parsed is not None else None
            sv_bytes = twin.get_state()
            rest: bytes | None = pycrdt.get_update(update, sv_bytes)
            if Decoder(rest or b"").read_var_uint(10, U64) == 0:
                # every struct integrated: the twin's clocks are the old ones or the update's
                clocks = self._clocks
                if own is None or clocks is None:
                    self._clocks = clocks = decode_state_vector(sv_bytes)
                else:
                    for client, end in own.items():
                        if end > clocks.get(client, 0):
                            clocks[client] = end
                deletes = parsed.deletes if parsed is not None else _delete_set(update, clocks)
                if all(
                    clock + length <= clocks.get(client, 0) for client, clock, length in deletes
                ):
                    rest = None
        except YjsProtocolError:
            self._rebuild_twin()
            raise
        except BaseException as exc:
            if not _is_yrs_error(exc):
                raise
            self._rebuild_twin()
            raise YjsProtocolError("invalid_update", str(exc)[:200]) from None
        # Yrs reports a transaction that only parked pending structs as the empty update.
        captured = [u for u in self._captured if u != EMPTY_UPDATE]
        if not captured:
            return None, rest
        return (captured[0] if len(captured) == 1 else pycrdt.merge_updates(*captured)), rest

    def _twin_clocks(self) -> dict[int, int]:
        """The twin's state vector (what ``_clocks`` keeps, read back when it is stale)."""
        if self._clocks is None:
            self._clocks = decode_state_vector(self._twin.get_state())
        return self._clocks

    def _parsed(self, update: bytes) -> Parsed | None:
        """``update`` read once in Python (its structs' clients and its delete set: a small
        update costs microseconds), or None for a large or unreadable one (then Yrs reads it,
        and refuses what is unreadable)."""
        if len(update) > _PARSE_OWN_BELOW:
            return None
        try:
            return parse(update)
        except YjsProtocolError:
            return None

    def _apply_to_doc(self, effective: bytes) -> None:
        try:
            self._fast.apply_update(effective)
        except BaseException as exc:  # pragma: no cover - the twin accepted the same change
            if not _is_yrs_error(exc):
                raise
            self._rebuild_twin()
            raise YjsProtocolError("invalid_update", str(exc)[:200]) from None
        self.size_estimate += len(effective)

    def _apply_complete(
        self, update: bytes, max_size: int | None, parsed: Parsed | None = None
    ) -> bytes | None:
        """Apply ``update`` only if it integrates completely; return the change it made (``None``
        if nothing). The real document is untouched on any raise."""
        effective, rest = self._check_on_twin(update, parsed)
        if rest is not None:
            self._rebuild_twin()
            raise MissingDependencies("update refers to structs the document does not have")
        if effective is None:
            return None
        if max_size is not None and self.size_estimate + len(effective) > max_size:
            self._rebuild_twin()
            raise YjsProtocolError("limit", "the document would exceed its size limit")
        self._apply_to_doc(effective)
        return effective

    def _apply_partial(self, update: bytes) -> tuple[bytes | None, bytes | None]:
        """Apply what integrates of ``update``; return (the change or ``None``, the part left
        waiting or ``None``)."""
        sv_before = self._doc.get_state()
        effective, rest = self._check_on_twin(update)
        if rest is None:
            if effective is not None:
                self._apply_to_doc(effective)
            return effective, None
        # Incomplete: the transaction's own update may name deletions of structs still pending,
        # so bring the real document up to the twin's *integrated* state instead (its encoding
        # leaves everything pending out), and only when something did integrate.
        twin_sv = self._twin.get_state()
        catch_up = self._twin.doc.get_update(sv_before)
        progressed = twin_sv != sv_before or self._deletions(self._twin.doc) != self._deletions(
            self._doc
        )
        if progressed:
            self._apply_to_doc(catch_up)
        self._rebuild_twin()
        return (catch_up if progressed else None), rest

    @staticmethod
    def _deletions(doc: pycrdt.Doc[Any]) -> list[tuple[int, int, int]]:
        """The deletions of integrated structs (Yrs may also list a parked one's)."""
        sv = decode_state_vector(doc.get_state())
        return sorted(
            (client, clock, length)
            for client, clock, length in _delete_set(doc.get_update(), sv)
            if clock + length <= sv.get(client, 0)
        )

    def _rebuild_twin(self) -> None:
        # the new twin first: if building it fails, the old one (and its subscription) stays,
        # so a later rebuild can still succeed
        twin = FastDoc(_fresh_doc(self._doc.get_update()))
        self._unobserve()
        self._twin = twin
        self._unobserve = twin.observe_updates(self._captured.append)
        self._captured.clear()
        self._clocks = decode_state_vector(twin.get_state())

    # --- read-outs for REST (on a scratch copy: typing a root never touches the real doc) ------

    def _scratch(self) -> pycrdt.Doc[Any]:
        return _fresh_doc(self._doc.get_update())

    def root_names(self) -> list[str]:
        """Names of the document's top-level types."""
        return sorted(self._scratch().keys())

    def text(self, name: str) -> str:
        """A root read as ``Y.Text`` (plain text, formatting dropped)."""
        return str(self._scratch().get(name, type=pycrdt.Text))

    def json(self, name: str, kind: str = "map") -> Any:
        """A root read as ``Y.Map`` (``kind="map"``) or ``Y.Array`` (``"array"``), as JSON
        values (nested Yjs types become their JSON too)."""
        scratch = self._scratch()
        if kind == "map":
            return scratch.get(name, type=pycrdt.Map).to_py()
        if kind == "array":
            return scratch.get(name, type=pycrdt.Array).to_py()
        raise ValueError(f"unknown kind {kind!r}")

    def xml(self, name: str) -> str:
        """A root read as ``Y.XmlFragment``, in Yjs's own ``toString`` form (element names in
        lower case, attributes sorted by name, as yjs 13.6 writes them)."""
        return "".join(
            _yjs_xml(c) for c in self._scratch().get(name, type=pycrdt.XmlFragment).children
        )

    def html(self, name: str) -> str:
        """A ``Y.XmlFragment`` written by a ProseMirror editor (Tiptap, BlockNote,
        y-prosemirror) as HTML: common node and mark names mapped, everything escaped."""
        return fragment_html(self._scratch().get(name, type=pycrdt.XmlFragment))


def compact(updates: Iterable[bytes]) -> bytes:
    """Merge a snapshot and the log entries after it into one update (store compaction).

    Works on the raw updates (Yrs ``merge_updates``), so structs still waiting for a dependency
    are kept; re-encoding through a document would drop them. Raises ``invalid_update``.
    """
    items = [u for u in updates if u]
    if not items:
        return EMPTY_UPDATE
    if len(items) == 1:
        return items[0]
    for u in items:
        _check_update_header(u)
    try:
        return pycrdt.merge_updates(*items)
    except BaseException as exc:
        if not _is_yrs_error(exc):
            raise
        raise YjsProtocolError("invalid_update", str(exc)[:200]) from None


def _ranges_cover(ours: list[tuple[int, int, int]], theirs: list[tuple[int, int, int]]) -> bool:
    by_client: dict[int, list[tuple[int, int]]] = {}
    for client, clock, length in ours:
        by_client.setdefault(client, []).append((clock, clock + length))
    for ranges in by_client.values():
        ranges.sort()
    for client, clock, length in theirs:
        start, end = clock, clock + length
        for lo, hi in by_client.get(client, []):
            if lo <= start < hi:
                start = hi
            if start >= end:
                break
        if start < end:
            return False
    return True


_BLOCKS = {
    "paragraph": "p",
    "blockquote": "blockquote",
    "bulletList": "ul",
    "bullet_list": "ul",
    "orderedList": "ol",
    "ordered_list": "ol",
    "listItem": "li",
    "list_item": "li",
    "table": "table",
    "tableRow": "tr",
    "tableCell": "td",
    "tableHeader": "th",
}
_VOID = {"hardBreak": "br", "hard_break": "br", "horizontalRule": "hr", "horizontal_rule": "hr"}
_MARKS = {
    "bold": "strong",
    "strong": "strong",
    "italic": "em",
    "em": "em",
    "code": "code",
    "strike": "s",
    "underline": "u",
}


def _html_node(node: Any) -> str:
    if isinstance(node, pycrdt.XmlText):
        out = []
        for chunk, attrs in node.diff():
            piece = html.escape(chunk) if isinstance(chunk, str) else ""
            for mark, value in sorted((attrs or {}).items()):
                if mark == "link" and isinstance(value, dict):
                    href = html.escape(str(value.get("href", "")), quote=True)
                    piece = f'<a href="{href}">{piece}</a>'
                elif mark in _MARKS:
                    piece = f"<{_MARKS[mark]}>{piece}</{_MARKS[mark]}>"
            out.append(piece)
        return "".join(out)
    tag = str(node.tag or "div") if isinstance(node, pycrdt.XmlElement) else "div"
    if tag in _VOID:
        return f"<{_VOID[tag]}>"
    inner = "".join(_html_node(child) for child in node.children)
    if tag == "heading":
        level = str(node.attributes.get("level") or "1")
        h = f"h{level}" if level in {"1", "2", "3", "4", "5", "6"} else "h1"
        return f"<{h}>{inner}</{h}>"
    if tag in ("codeBlock", "code_block"):
        return f"<pre><code>{inner}</code></pre>"
    html_tag = _BLOCKS.get(tag, "div")
    return f"<{html_tag}>{inner}</{html_tag}>"


def fragment_html(fragment: pycrdt.XmlFragment) -> str:
    """A ``Y.XmlFragment`` written by a ProseMirror editor as HTML (see ``YjsDocument.html``)."""
    return "".join(_html_node(child) for child in fragment.children)


def _yjs_xml(node: Any) -> str:
    """One node of an XML fragment as ``Y.XmlElement.toString`` writes it (texts as pycrdt's
    ``str``, which follows ``Y.XmlText.toString``)."""
    if isinstance(node, pycrdt.XmlElement):
        tag = (node.tag or "").lower()
        view: Any = node.attributes  # iterates (name, value) pairs
        attrs = "".join(f' {k}="{v}"' for k, v in sorted(view))
        inner = "".join(_yjs_xml(c) for c in node.children)
        return f"<{tag}{attrs}>{inner}</{tag}>"
    return str(node)
