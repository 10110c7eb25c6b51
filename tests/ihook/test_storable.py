"""``ihook.storable``: which text a database can store, and where in a document it fails."""

from __future__ import annotations

from ihook.storable import storable, unstorable_at


def test_nul_and_unpaired_surrogates_are_unstorable() -> None:
    assert storable("plain é ✓ 😀")
    assert not storable("a\x00b")
    assert not storable("\ud800")
    assert not storable("x\udfff")


def test_the_first_unstorable_place_is_named() -> None:
    assert unstorable_at({"a": [1, "ok", {"b": "x\x00"}]}) == "a.2.b"
    assert unstorable_at({"k\ud800": 1}) == "k\ud800"
    assert unstorable_at(["ok", "\x00"]) == "1"
    assert unstorable_at("\x00") == ""
    assert unstorable_at({"a": ["ok", 1, None, 2.5]}) is None
