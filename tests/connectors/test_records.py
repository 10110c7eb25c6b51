from __future__ import annotations

from typing import Any

import pytest

from connectors import RecordError, RecordsConnector, RecordStore
from tests.support import MemoryStore


@pytest.fixture
def records() -> RecordsConnector:
    store: RecordStore = MemoryStore()
    return RecordsConnector(store)


def test_make_key(records: RecordsConnector) -> None:
    data = {"member_id": 42, "course": "PY1", "flag": True}
    assert records.make_key("course", data) == "PY1"
    assert records.make_key(["member_id", "course"], data) == "42:PY1"
    assert records.make_key(["flag"], data) == "True"


@pytest.mark.parametrize(
    ("spec", "data", "message"),
    [
        ("course", {}, "'course' is missing"),
        (["a", "course"], {"a": 1, "course": None}, "'course' is missing or null"),
        ("a", {"a": {"x": 1}}, "'a' must be a scalar"),
        ([], {"a": 1}, "at least one field"),
        ("a", ["not", "an", "object"], "must be an object"),
        ("a", {"a": ""}, "1-255 characters"),
        ("a", {"a": "x" * 256}, "1-255 characters"),
    ],
)
def test_bad_keys(records: RecordsConnector, spec: Any, data: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        records.make_key(spec, data)


def test_write_modes(records: RecordsConnector) -> None:
    first = records.write("members", "1", {"n": 1}, "insert")
    assert first == {"collection": "members", "key": "1", "action": "created", "data": {"n": 1}}
    assert records.write("members", "1", {"n": 1}, "upsert")["action"] == "unchanged"
    assert records.write("members", "1", {"n": 2}, "update")["action"] == "updated"
    assert records.get("members", "1") == {"n": 2}
    with pytest.raises(RecordError):
        records.write("members", "1", {"n": 3}, "insert")
    with pytest.raises(RecordError):
        records.write("members", "2", {"n": 3}, "update")


def test_delete(records: RecordsConnector) -> None:
    records.write("members", "1", {}, "upsert")
    assert records.delete("members", "1") is True
    assert records.delete("members", "1") is False
    assert records.get("members", "1") is None


@pytest.mark.parametrize("name", ["", "Members", "a b", "x" * 65, "a/b"])
def test_bad_collection_names(records: RecordsConnector, name: str) -> None:
    with pytest.raises(RecordError, match="collection"):
        records.write(name, "1", {}, "upsert")


def test_good_collection_names(records: RecordsConnector) -> None:
    for name in ("a", "lms.activities", "x-1_y", "z" * 64):
        records.write(name, "1", {}, "upsert")


def test_bad_mode_and_data(records: RecordsConnector) -> None:
    with pytest.raises(RecordError, match="mode"):
        records.write("c", "1", {}, "merge")
    with pytest.raises(RecordError, match="object"):
        records.write("c", "1", [1, 2], "upsert")  # type: ignore[arg-type]
