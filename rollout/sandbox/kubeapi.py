"""The Kubernetes API stand-in: an HTTP server that kubectl and the `kubernetes` client use.

Routing and HTTP live here; the semantics (resourceVersions, conflicts, generation, status
subresource, schema checks, watch) are `kubestore.Store`'s, the resource table is
`kuberesources`, and discovery/OpenAPI documents are `kubediscovery`.

Why not kmock (PyPI, assessed at 0.8): its Kubernetes emulator stores objects as plain
dicts that every write merges into; it has no resourceVersion (lists say "..."), so no 409
on a stale write, no generation, no status subresource, PUT merges instead of replacing,
JSON patch is not applied as RFC 6902, watches ignore resourceVersion and timeoutSeconds
(no replay, no 410), there is no discovery document kubectl accepts for CRDs nor OpenAPI,
and it would add aiohttp. Those are the semantics our router and tests depend on, so this
is a small stdlib `ThreadingHTTPServer` instead.

Not emulated (nothing here depends on it): protobuf request bodies (kubectl's typed
`create configmap`; `apply -f` sends JSON), server-side apply, dryRun (refused with 400
rather than written), pagination (`limit` is ignored: one page), deletecollection,
finalizers and graceful deletion (a namespace's objects go with it at once), conversion
between core and events.k8s.io Events (stored apart), CEL rules, and printer columns
beyond NAME and AGE. A watch older than the event log gets what the real server sends:
HTTP 200 with one ERROR event holding a 410 Expired Status.

Run as a process: `python -m rollout.sandbox.kubeapi --port-file F [--port P]
[--namespace NS]... [--filename FILE]...` (what `rollout sandbox up` does).

Test/debug endpoint: `GET /_sandbox/history/<object path>` (the object's API path, e.g.
`/_sandbox/history/apis/networking.istio.io/v1/namespaces/demo/virtualservices/web`)
answers `{"kind": "WriteHistory", "items": [{"verb", "resourceVersion", "changed",
"object"}, ...]}`, one item per successful write request, oldest first: `verb` is create,
update, patch, update/status, patch/status or delete; `changed` is false for a write that
changed nothing (the API server then keeps the resourceVersion and sends no watch event);
`object` is the object as stored after the write (null for delete). Refused writes (409,
422...) are not in it; an object never written has an empty list.
"""

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
import yaml

from rollout import log as logging_setup
from rollout.errors import InputError
from rollout.sandbox import kubediscovery as docs
from rollout.sandbox.kuberesources import ResourceTable, ResourceType, default_resources
from rollout.sandbox.kubestore import ApiError, Store, bad_request, matcher

Obj = dict[str, Any]

log = structlog.get_logger(__name__)

# Without timeoutSeconds a watch ends after this, as the real server ends it after 30-60 min.
DEFAULT_WATCH_TIMEOUT_S = 1800.0
HISTORY_PREFIX = "/_sandbox/history"
# How often serve_forever checks for shutdown: what `stop` (and `sandbox down`) waits at most.
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Target:
    """What a resource URL names: a collection (name None) or one object."""

    rt: ResourceType
    version: str
    namespace: str | None  # None: all namespaces (lists) or a cluster-scoped resource
    name: str | None = None
    subresource: str | None = None


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def parse_target(table: ResourceTable, parts: list[str]) -> Target | None:
    """Parse `api/v1/...` or `apis/<g>/<v>/...` into a Target; None if it names nothing."""
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and table.find(group, version, rest[2]):
        namespace, rest = rest[1], rest[2:]
    rt = table.find(group, version, rest[0]) if rest else None
    if rt is None or len(rest) > 3 or (namespace is not None and not rt.namespaced):
        return None
    if len(rest) > 1 and rt.namespaced and namespace is None:
        return None  # a namespaced object is only addressed inside its namespace
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return Target(rt, version, namespace, name, subresource)


class KubeApiServer(ThreadingHTTPServer):
    """The stand-in's HTTP server: one Store, served on 127.0.0.1."""

    daemon_threads = True

    def __init__(self, port: int = 0, event_log_size: int = 1000) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.table = ResourceTable(default_resources())
        self.store = Store(event_log_size)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "KubeApiServer":
        """Serve in a background thread (tests); `stop` ends it."""
        self._thread = threading.Thread(
            target=self.serve_forever, args=(POLL_INTERVAL_S,), name="kubeapi", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the watches, stop serving and release the port."""
        self.store.close()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()

    def create_namespaces(self, names: Iterable[str]) -> None:
        rt, version = self._resource("v1", "Namespace")
        for name in names:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            self.store.create(rt, version, "", body)

    def load(self, path: Path, default_namespace: str = "default") -> int:
        """Create every object in the YAML file `path`; the count created.

        Raises InputError naming the file and object when one cannot be created.
        """
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{path}: cannot read objects: {exc}") from exc
        for index, obj in enumerate(documents):
            where = f"{path}: object {index + 1}"
            if not isinstance(obj, dict):
                raise InputError(f"{where}: not a mapping")
            rt, version = self._resource(str(obj.get("apiVersion")), str(obj.get("kind")), where)
            namespace = ""
            if rt.namespaced:
                meta = obj.get("metadata") or {}
                namespace = str(meta.get("namespace") or default_namespace)
            try:
                self.store.create(rt, version, namespace, obj)
            except ApiError as exc:
                raise InputError(f"{where}: {exc}") from exc
        return len(documents)

    def _resource(
        self, api_version: str, kind: str, where: str = "sandbox"
    ) -> tuple[ResourceType, str]:
        found = self.table.by_kind(api_version, kind)
        if found is None:
            raise InputError(f"{where}: {api_version}/{kind} is not served by the sandbox")
        return found


class _Handler(BaseHTTPRequestHandler):
    server: KubeApiServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle on, each response would wait
    # for the delayed ACK of the first (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubeapi.request", line=format % args)

    # --- dispatch ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._read_body()
            if method == "GET" and self._serve_document(url.path):
                return
            target = parse_target(self.server.table, _split(url.path))
            if target is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if "dryRun" in query:
                # Refused rather than ignored: ignoring it would write what was only a trial.
                raise bad_request("dryRun is not supported by the sandbox API")
            self._serve_resource(method, target, query, body)
        except ApiError as exc:
            self._send(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a watch it stopped)
        except Exception as exc:  # a bug here: answer 500 as the API server would, and log it
            log.exception("kubeapi.internal_error", method=method, path=self.path)
            self.close_connection = True
            self._send(500, ApiError(500, "InternalError", repr(exc)).status())

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            # Only kubectl's typed commands (`create configmap`...) send protobuf; `apply -f`,
            # `patch`, and the Python client send JSON, which is all this stand-in reads.
            raise ApiError(415, "UnsupportedMediaType", "only JSON request bodies are served")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise bad_request(f"the request body is neither JSON nor YAML: {exc}") from exc

    def _serve_document(self, path: str) -> bool:
        """Discovery, version, OpenAPI and history documents; False if `path` is none."""
        table = self.server.table
        parts = _split(path)
        document: Obj | None = None
        if path.startswith(HISTORY_PREFIX + "/"):
            document = self._history(_split(path[len(HISTORY_PREFIX) :]))
        elif parts == ["version"]:
            document = docs.version()
        elif parts == ["api"]:
            document = docs.core_versions()
        elif parts == ["apis"]:
            document = docs.api_groups(table)
        elif parts == ["api", "v1"]:
            document = docs.resource_list(table, "", "v1")
        elif len(parts) == 2 and parts[0] == "apis":
            versions = table.group_versions().get(parts[1])
            document = docs.api_group(parts[1], versions) if versions else None
        elif len(parts) == 3 and parts[0] == "apis" and parts[2] in self._versions(parts[1]):
            document = docs.resource_list(table, parts[1], parts[2])
        elif parts == ["openapi", "v3"]:
            document = docs.openapi_v3_index(table)
        elif parts[:2] == ["openapi", "v3"]:
            document = self._openapi(parts[2:])
        else:
            return False
        if document is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self._send(200, document)
        return True

    def _versions(self, group: str) -> list[str]:
        return self.server.table.group_versions().get(group, [])

    def _openapi(self, parts: list[str]) -> Obj | None:
        if parts == ["api", "v1"]:
            return docs.openapi_v3(self.server.table, "", "v1")
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in self._versions(parts[1]):
            return docs.openapi_v3(self.server.table, parts[1], parts[2])
        return None

    def _history(self, parts: list[str]) -> Obj | None:
        target = parse_target(self.server.table, parts)
        if target is None or target.name is None or target.subresource is not None:
            return None
        items = self.server.store.history(target.rt, target.namespace or "", target.name)
        return {"kind": "WriteHistory", "apiVersion": "v1", "items": items}

    # --- resources -----------------------------------------------------------------------

    def _serve_resource(
        self, method: str, target: Target, query: dict[str, str], body: Any
    ) -> None:
        if target.name is None:
            self._serve_collection(method, target, query, body)
        else:
            self._serve_object(method, target, target.name, body)

    def _serve_collection(
        self, method: str, target: Target, query: dict[str, str], body: Any
    ) -> None:
        if method == "POST":
            namespace = target.namespace or ""
            created = self.server.store.create(
                target.rt, target.version, namespace, self._object(body)
            )
            self._written("create", created, 201)
        elif method == "GET":
            self._list_or_watch(target, query)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")

    def _serve_object(self, method: str, target: Target, name: str, body: Any) -> None:
        store, rt, version = self.server.store, target.rt, target.version
        namespace, subresource = target.namespace or "", target.subresource
        if method == "GET":
            if subresource not in (None, "status"):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            obj = store.get(rt, version, namespace, name)
            revision = obj["metadata"]["resourceVersion"]
            self._send(
                200, docs.table(rt, version, [obj], revision) if self._wants_table() else obj
            )
        elif method == "PUT":
            replaced = store.replace(rt, version, namespace, name, self._object(body), subresource)
            self._written("update", replaced)
        elif method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            patched = store.patch(rt, version, namespace, name, content_type, body, subresource)
            self._written("patch", patched)
        elif method == "DELETE":
            self._written("delete", store.delete(rt, version, namespace, name))
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")

    @staticmethod
    def _object(body: Any) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        return body

    def _written(self, verb: str, obj: Obj, code: int = 200) -> None:
        meta = obj.get("metadata") or {}
        log.info(
            "kubeapi.write",
            verb=verb,
            kind=obj.get("kind"),
            namespace=meta.get("namespace"),
            name=meta.get("name"),
            resource_version=meta.get("resourceVersion"),
        )
        self._send(code, obj)

    def _list_or_watch(self, target: Target, query: dict[str, str]) -> None:
        match = matcher(query.get("labelSelector"), query.get("fieldSelector"))
        store = self.server.store
        if query.get("watch") in ("true", "1"):
            since = query.get("resourceVersion")
            if since is not None and not since.isdigit():
                raise bad_request(f"invalid resourceVersion {since!r}")
            timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT_S)
            events = store.watch(
                target.rt, target.version, target.namespace, match,
                int(since) if since else None, timeout,
            )  # fmt: skip
            self._stream(events)
            return
        listing = store.list_objects(target.rt, target.version, target.namespace, match)
        if self._wants_table():
            revision = listing["metadata"]["resourceVersion"]
            self._send(200, docs.table(target.rt, target.version, listing["items"], revision))
        else:
            self._send(200, listing)

    def _wants_table(self) -> bool:
        return "as=Table" in (self.headers.get("Accept") or "")

    # --- responses -----------------------------------------------------------------------

    def _send(self, code: int, document: Obj) -> None:
        payload = json.dumps(document).encode()
        self.send_response(code, HTTPStatus(code).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, events: Iterator[Obj]) -> None:
        """A watch: newline-delimited JSON events, one HTTP chunk each, until it ends."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for event in events:
            line = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def kubeconfig(url: str, namespace: str = "default") -> str:
    """A kubeconfig for `url`: cluster, user (no auth) and context all named `sandbox`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {"server": url}}],
        "users": [{"name": "sandbox", "user": {}}],
        "contexts": [
            {
                "name": "sandbox",
                "context": {"cluster": "sandbox", "user": "sandbox", "namespace": namespace},
            }
        ],
        "current-context": "sandbox",
    }
    return yaml.safe_dump(config, sort_keys=False)


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in in the foreground until SIGTERM (the `sandbox up` child process)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, required=True, help="written once serving")
    parser.add_argument("--namespace", action="append", default=[])
    parser.add_argument("--filename", action="append", type=Path, default=[])
    args = parser.parse_args(argv)
    logging_setup.configure(json=True)
    try:
        server = KubeApiServer(args.port)
    except OSError as exc:  # the port is taken
        log.error("kubeapi.bind_failed", port=args.port, error=str(exc))
        sys.exit(3)
    namespaces = args.namespace or ["default"]
    try:
        server.create_namespaces(namespaces)
        for path in args.filename:
            server.load(path, namespaces[0])
    except (InputError, ApiError) as exc:
        log.error("kubeapi.preload_failed", error=str(exc))
        sys.exit(2)
    _stop_on_sigterm(server)
    args.port_file.write_text(f"{server.port}\n")
    log.info("kubeapi.serving", url=server.url)
    server.serve_forever(POLL_INTERVAL_S)
    server.server_close()


def _stop_on_sigterm(server: KubeApiServer) -> None:
    """SIGTERM ends serve_forever (from another thread: shutdown() waits for it)."""

    def stop(signum: int, frame: object) -> None:
        server.store.close()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)


if __name__ == "__main__":
    main()
