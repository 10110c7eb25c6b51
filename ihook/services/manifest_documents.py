"""The documents of definition files: read from YAML, labelled, checked for their framing,
and their ``${NAME}`` references resolved from the environment.

Nothing here touches the database; :mod:`ihook.services.manifests` applies what it gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ihook.errors import Invalid
from workflows.definition import NAME

KINDS = ("Connector", "Workflow")
"""Document kinds, applied in this order: workflows may name the connectors."""

PATTERNS = ("*.yaml", "*.yml")
"""Files read from a directory, in sorted order."""

_ENV_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONNECTOR_FIELDS = {"kind", "name", "type", "config"}

Document = tuple[str, Any]
"""Where a document came from (its file) and what it holds."""


def load_documents(path: str | Path) -> list[Document]:
    """The documents of a YAML file, or of every ``*.yaml``/``*.yml`` file in a directory."""
    path = Path(path)
    if path.is_dir():
        files = sorted({f for pattern in PATTERNS for f in path.glob(pattern) if f.is_file()})
        if not files:
            raise Invalid(f"no {' or '.join(PATTERNS)} files in {path}", {str(path): ["empty"]})
    else:
        files = [path]
    docs: list[Document] = []
    for file in files:
        try:
            loaded = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise Invalid(f"cannot read {file}", {str(file): [str(exc)]}) from None
        docs.extend((str(file), doc) for doc in loaded if doc is not None)
    return docs


def label_documents(docs: Iterable[Document]) -> list[tuple[str, Any]]:
    """Each document named for error messages: ``file #n (Kind name)``, n from 1 per file."""
    counts: dict[str, int] = {}
    out = []
    for source, doc in docs:
        counts[source] = counts.get(source, 0) + 1
        what = ""
        if isinstance(doc, Mapping):
            what = " ".join(str(doc[k]) for k in ("kind", "name") if doc.get(k) is not None)
        out.append((f"{source} #{counts[source]}" + (f" ({what})" if what else ""), doc))
    return out


def shape_problems(doc: Any) -> dict[str, list[str]]:
    """Problems the services would not report: the document's kind and framing."""
    if not isinstance(doc, Mapping):
        return {"document": ["Must be a mapping with a kind."]}
    kind = doc.get("kind")
    if kind not in KINDS:
        return {"kind": [f"Must be one of {', '.join(KINDS)} (got {kind!r})."]}
    problems: dict[str, list[str]] = {}
    if kind == "Workflow":
        if "enabled" in doc and not isinstance(doc["enabled"], bool):
            problems["enabled"] = ["Must be true or false."]
        return problems
    for key in sorted(doc.keys() - _CONNECTOR_FIELDS, key=str):
        problems[str(key)] = ["Unknown field."]
    for key in ("name", "type"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            problems[key] = ["Missing data for required field."]
    if "name" not in problems and not NAME.match(doc["name"]):
        problems["name"] = [
            "Use 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit."
        ]
    if not isinstance(doc.get("config", {}), Mapping):
        problems["config"] = ["Must be a mapping."]
    return problems


def resolve_references(
    value: Any, env: Mapping[str, str], where: str, missing: dict[str, list[str]]
) -> Any:
    """``value`` with each ``${NAME}`` replaced from ``env``; ``$${NAME}`` stays literal.
    Each unset variable is added to ``missing`` under the dotted path of its field."""
    if isinstance(value, Mapping):
        return {k: resolve_references(v, env, f"{where}.{k}", missing) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, env, f"{where}.{i}", missing) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name not in env:
            missing.setdefault(where, []).append(f"Environment variable {name} is not set.")
            return ""
        return env[name]

    return _ENV_REF.sub(substitute, value)
