"""deploy/ and the Dockerfile: every manifest parses, the CRDs are the generated ones and
structural, and RBAC grants exactly what the controller uses (must-show 3).

"What the controller uses" is checked twice: `PERMISSIONS` (the controller's declared
table) must equal deploy/rbac.yaml, and the API calls the controller processes actually made
during this session's end-to-end tests (recorded by the stand-in, told apart by their
User-Agent) must be exactly `PERMISSIONS` - nothing missing, nothing unused.
"""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from controller_helpers import API_CALLS

from rollout.controller import PERMISSIONS, USER_AGENT
from rollout.resources import CanaryRollout, crd_documents, crd_files

DEPLOY = Path(__file__).parents[2] / "deploy"
ROOT = DEPLOY.parent


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((path, doc))
    return found


def test_every_manifest_parses_and_names_itself() -> None:
    docs = manifests()
    assert len(docs) >= 12
    for path, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), path
        assert doc["kind"] == "Kustomization" or doc["metadata"]["name"], path


def test_kustomization_lists_every_manifest_and_builds() -> None:
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    files = {str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == files
    built = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr


def test_committed_crds_are_the_generated_ones() -> None:
    for name, text in crd_files().items():
        assert (DEPLOY / name).read_text() == text, "regenerate: python -m rollout.resources"


def _structural_errors(node: dict[str, Any], path: str) -> list[str]:
    """The structural-schema rules the API server enforces, for the keywords we emit."""
    errors = []
    if "$ref" in node or "anyOf" in node or "oneOf" in node or "allOf" in node:
        errors.append(f"{path}: $ref/anyOf/oneOf/allOf")
    special = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
        "x-kubernetes-int-or-string"
    )
    if "type" not in node and not special:
        errors.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        errors.append(f"{path}: properties and additionalProperties")
    if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(
        node.get("exclusiveMinimum"), bool
    ):
        errors.append(f"{path}: numeric exclusiveMinimum (OpenAPI v3.0 wants a boolean)")
    for name, sub in (node.get("properties") or {}).items():
        errors += _structural_errors(sub, f"{path}.{name}")
    if "items" in node:
        errors += _structural_errors(node["items"], f"{path}[]")
    return errors


@pytest.mark.parametrize("crd", crd_documents(), ids=lambda c: c["metadata"]["name"])
def test_crds_are_structural(crd: dict[str, Any]) -> None:
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert _structural_errors(schema, "") == []
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_canary_rollout_crd_has_status_subresource_and_printer_columns() -> None:
    canary, _ = crd_documents()
    (version,) = canary["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Weight", "Step", "Age"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for column in version["additionalPrinterColumns"]:
        field = column["jsonPath"].split(".")[-1]
        assert field == "creationTimestamp" or field in status


def test_example_canary_rollout_is_valid() -> None:
    (doc,) = [d for p, d in manifests() if d["kind"] == "CanaryRollout"]
    rollout = CanaryRollout.model_validate(doc)
    assert rollout.spec.target.canary == "v2"


def rbac_rules() -> set[tuple[str, str, str]]:
    rules = set()
    for _, doc in manifests():
        if doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            rules.add((group, resource, verb))
    return rules


def declared() -> set[tuple[str, str, str]]:
    return {(g, r, v) for g, r, verbs in PERMISSIONS for v in verbs}


def test_rbac_has_no_wildcard_and_grants_exactly_the_declared_calls() -> None:
    rules = rbac_rules()
    assert not [rule for rule in rules if "*" in rule]
    assert rules == declared()


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_PATH = re.compile(
    r"^/apis?/(?:(?P<group>[^/]+)/)?(?P<version>v[^/]+)(?:/namespaces/[^/]+)?"
    r"/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def as_rule(method: str, url: str) -> tuple[str, str, str] | None:
    """The RBAC rule a request needs; None for discovery (allowed to every user)."""
    parts = urlsplit(url)
    match = _PATH.match(parts.path)
    if match is None:
        return None
    group = match["group"] if parts.path.startswith("/apis/") else ""
    resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
    if method == "GET":
        watching = parse_qs(parts.query).get("watch") == ["true"]
        verb = "get" if match["name"] else ("watch" if watching else "list")
    else:
        verb = _VERBS[method]
    return (group or "", resource, verb)


def test_the_controller_used_exactly_what_rbac_grants() -> None:
    calls = [(method, path) for agent, method, path in API_CALLS if agent == USER_AGENT]
    if not calls:
        pytest.skip("no controller ran in this session (run with the controller e2e tests)")
    used = {rule for method, path in calls if (rule := as_rule(method, path)) is not None}
    assert used == declared()


def test_dockerfile_is_multi_stage_non_root_with_the_controller_entrypoint() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert stages == ["python:3.12-slim", "python:3.12-slim"]
    final = text.split("\nFROM ")[-1]
    assert "COPY --from=build /venv /venv" in final
    assert re.search(r"^USER 10001", final, re.MULTILINE)
    assert 'ENTRYPOINT ["rollout", "controller"]' in final
    assert "apt-get" not in final and "pip install" not in final


def test_rollout_validate_checks_canary_rollout_manifests(tmp_path: Path) -> None:
    rollout = str(Path(sys.executable).with_name("rollout"))
    example = DEPLOY / "example" / "canaryrollout.yaml"
    good = subprocess.run([rollout, "validate", str(example)], capture_output=True, text=True)
    assert good.returncode == 0 and "CanaryRollout cello-app: valid" in good.stdout
    bad = tmp_path / "bad.yaml"
    typo = example.read_text().replace("    canary: v2", "    canary: v2\n    pasued: true")
    bad.write_text(typo)
    done = subprocess.run([rollout, "validate", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("spec.target.pasued: unknown field")
