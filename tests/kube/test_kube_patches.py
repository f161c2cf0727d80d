"""The patch formats of the API stand-in: RFC 7386 merge patch and RFC 6902 JSON patch."""

import pytest

from rollout.sandbox.patches import PatchError, json_patch, merge_patch


def test_merge_patch_merges_objects_deletes_nulls_and_replaces_lists() -> None:
    doc = {"a": {"b": 1, "c": 2}, "l": [1, 2], "keep": True}
    assert merge_patch(doc, {"a": {"b": None, "d": 3}, "l": [3]}) == {
        "a": {"c": 2, "d": 3}, "l": [3], "keep": True,
    }  # fmt: skip
    assert doc == {"a": {"b": 1, "c": 2}, "l": [1, 2], "keep": True}  # not changed in place


def test_json_patch_operations() -> None:
    doc = {"spec": {"http": [{"route": [{"w": 1}]}]}, "m": {"a/b": 1}}
    patched = json_patch(doc, [
        {"op": "add", "path": "/spec/http/0/route/-", "value": {"w": 2}},
        {"op": "replace", "path": "/spec/http/0/route/0/w", "value": 9},
        {"op": "test", "path": "/m/a~1b", "value": 1},
        {"op": "move", "from": "/m/a~1b", "path": "/m/c"},
        {"op": "copy", "from": "/m/c", "path": "/m/d"},
        {"op": "remove", "path": "/m/c"},
    ])  # fmt: skip
    assert patched == {"spec": {"http": [{"route": [{"w": 9}, {"w": 2}]}]}, "m": {"d": 1}}
    assert doc["spec"]["http"][0]["route"] == [{"w": 1}]


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "test", "path": "/a", "value": 2},
        {"op": "replace", "path": "/missing", "value": 1},
        {"op": "remove", "path": "/l/5"},
        {"op": "add", "path": "/l/x", "value": 1},
        {"op": "jump", "path": "/a"},
    ],
)
def test_json_patch_refuses_what_does_not_apply(operation: dict[str, object]) -> None:
    with pytest.raises(PatchError):
        json_patch({"a": 1, "l": [0]}, [operation])
