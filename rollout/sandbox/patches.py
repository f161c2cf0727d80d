"""The patch formats the Kubernetes API accepts, applied to plain JSON objects.

JSON merge patch (RFC 7386) and JSON patch (RFC 6902) are small enough to implement here
exactly, which keeps the stand-in free of another dependency. A failed JSON patch operation
(a `test` that does not hold, a missing path) is a `PatchError`; the server answers it with
422 as the real API server does.
"""

import copy
from typing import Any

Obj = dict[str, Any]


class PatchError(ValueError):
    """The patch cannot be applied to this document."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902: apply `operations` in order to a copy of `document`; all or nothing."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        result = _apply_operation(result, operation)
    return result


def _apply_operation(document: Any, operation: Any) -> Any:
    if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
        raise PatchError(f"invalid JSON patch operation: {operation!r}")
    op, path = operation.get("op"), operation["path"]
    if op in ("add", "replace", "test") and "value" not in operation:
        raise PatchError(f"{op} {path}: missing value")
    if op == "add":
        return _add(document, path, copy.deepcopy(operation["value"]))
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":
        _get(document, path)  # must exist
        return _add(_remove(document, path)[0], path, copy.deepcopy(operation["value"]))
    if op in ("move", "copy"):
        source = operation.get("from")
        if not isinstance(source, str):
            raise PatchError(f"{op} {path}: missing from")
        value = copy.deepcopy(_get(document, source))
        if op == "move":
            document = _remove(document, source)[0]
        return _add(document, path, value)
    if op == "test":
        if _get(document, path) != operation["value"]:
            raise PatchError(f"test {path}: value differs")
        return document
    raise PatchError(f"unknown JSON patch op {op!r}")


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with /")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, appending: bool = False) -> int:
    if appending and token == "-":
        return len(container)
    if not token.isdigit():
        raise PatchError(f"{path}: {token!r} is not an array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not appending):
        raise PatchError(f"{path}: index {index} out of range")
    return index


def _get(document: Any, path: str) -> Any:
    node = document
    for token in _tokens(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, path)]
        else:
            raise PatchError(f"{path}: no such path")
    return node


def _parent(document: Any, path: str) -> tuple[Any, str]:
    tokens = _tokens(path)
    if not tokens:
        raise PatchError("cannot address the document root here")
    parent = "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1])
    return _get(document, parent), tokens[-1]


def _add(document: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    container, token = _parent(document, path)
    if isinstance(container, dict):
        container[token] = value
    elif isinstance(container, list):
        container.insert(_index(container, token, path, appending=True), value)
    else:
        raise PatchError(f"{path}: parent is not an object or array")
    return document


def _remove(document: Any, path: str) -> tuple[Any, Any]:
    container, token = _parent(document, path)
    if isinstance(container, dict) and token in container:
        return document, container.pop(token)
    if isinstance(container, list):
        return document, container.pop(_index(container, token, path))
    raise PatchError(f"{path}: no such path")
