"""Membership: one room's connections, listeners and joins, through its methods only."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from cowrite.server.auth import Identity, anonymous
from cowrite.server.membership import ALL, Membership


class FakePeer:
    """A connection as the membership sees it (no socket: membership never sends)."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.client_id = session
        self.identity: Identity = anonymous(session)
        self._docs: dict[str, str] = {}

    @property
    def docs(self) -> Mapping[str, str]:
        return self._docs

    def send(self, data: bytes) -> None:
        raise AssertionError("membership never sends")

    def close(self, code: int, reason: str) -> None:
        raise AssertionError("membership never closes")

    def entered(self, doc_id: str, mode: str) -> None:
        self._docs[doc_id] = mode

    def left(self, doc_id: str) -> None:
        self._docs.pop(doc_id, None)

    def saving(self, doc_id: str, pending: bool) -> None:
        raise AssertionError("membership never tells")


def test_a_joining_connection_listens_only_once_its_joined_is_sent() -> None:
    m = Membership()
    a = FakePeer("a")
    m.hold(a)
    m.admit(a, "thin")
    assert m.has(a) and len(m) == 1 and m.is_joining("a")
    assert m.listeners() == []  # broadcasts before the joined are in its snapshot
    m.listen(a)
    m.join_done("a")
    assert m.listeners() == [a] and m.listeners("thin") == [a] and m.listeners("replica") == []
    assert not m.is_joining("a")


def test_a_failed_first_join_leaves_nothing_and_a_failed_rejoin_keeps_the_place() -> None:
    m = Membership()
    a = FakePeer("a")
    assert m.release(m.hold(a)) is True  # first join failed: out (the room may unload)
    assert not m and m.connections() == []
    m.hold(a)
    m.admit(a, "replica")
    m.listen(a)
    hold = m.hold(a)  # a rejoin: stops listening until its new joined
    assert m.listeners() == []
    assert m.release(hold) is False
    assert m.has(a) and m.listeners(ALL) == [a] and m.listeners("replica") == [a]


def test_another_connection_with_the_same_session_is_not_a_member() -> None:
    m = Membership()
    a, impostor = FakePeer("s"), FakePeer("s")
    m.add(a)
    assert m.has(a) and not m.has(impostor)
    assert m.remove(impostor) is False and m.has(a)
    assert m.remove(a) is True and not m.has(a) and m.remove(a) is False


def test_a_connection_that_left_while_joining_never_starts_listening() -> None:
    m = Membership()
    a = FakePeer("a")
    m.hold(a)
    m.admit(a, "thin")
    m.remove(a)
    m.listen(a)  # its joined went out after it left
    m.join_done("a")
    assert m.listeners() == [] and not m


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["hold-ok", "hold-fail", "listen", "remove", "add"]),
            st.integers(0, 3),
            st.sampled_from(["thin", "replica"]),
        ),
        max_size=40,
    )
)
def test_listeners_are_always_members_with_their_mode(
    steps: list[tuple[str, int, str]],
) -> None:
    """Whatever the order of joins, failures, leaves: a listener is a member, a broadcast to a
    mode reaches exactly the listeners admitted with it, and ``len`` counts members."""
    m = Membership()
    peers = [FakePeer(f"p{i}") for i in range(4)]
    modes: dict[str, str] = {}
    for action, i, mode in steps:
        peer = peers[i]
        if action == "hold-ok":
            m.hold(peer)
            m.admit(peer, mode)
            modes[peer.session] = mode
        elif action == "hold-fail":
            was_member = m.has(peer)
            m.release(m.hold(peer))
            assert m.has(peer) == was_member
        elif action == "listen":
            m.listen(peer)
            m.join_done(peer.session)
        elif action == "remove":
            m.remove(peer)
            modes.pop(peer.session, None)
        else:
            m.add(peer)
        members = m.connections()
        assert len(m) == len(members) == len({p.session for p in members})
        assert all(m.has(p) for p in m.listeners())
        for wanted in ("thin", "replica"):
            assert {p.session for p in m.listeners(wanted)} == {
                p.session for p in m.listeners() if modes.get(p.session) == wanted
            }
