"""Step and connector plugins from another distribution, found through entry points.

Each test builds a real (unpacked) distribution in ``tmp_path`` — a module plus its
``.dist-info`` with METADATA and entry_points.txt, which is all importlib.metadata looks
at — and runs ihook in a subprocess with that directory on PYTHONPATH, so the registries
start fresh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

DEMO_MODULE = '''
"""A plugin with a step type and a connector kind, declared like ihook's own."""

from marshmallow import Schema, fields

from connectors import register_connector
from workflows import Step, register_step
from workflows.schema import StepConfig, jmespath_field


class ShoutConfig(StepConfig):
    text = jmespath_field(required=True)


@register_step
class Shout(Step):
    """Upper-case the string that ``text`` selects."""

    type = "shout"
    Config = ShoutConfig

    def run(self, config, ctx):
        return str(ctx.search(config["text"])).upper()


class Whisper(Step):
    """Not decorated: the loader registers it."""

    type = "whisper"
    Config = ShoutConfig

    def run(self, config, ctx):
        return str(ctx.search(config["text"])).lower()


class DemoConfig(Schema):
    greeting = fields.String(required=True)
    token = fields.String(load_only=True)


@register_connector
class DemoConnector:
    kind = "demo"
    Config = DemoConfig

    def __init__(self, config, *, policy, client=None):
        self.config = config

    def greet(self, name):
        return f"{self.config['greeting']}, {name}"

    def close(self):
        pass
'''

DEMO_ENTRY_POINTS = """
[ihook.steps]
shout = ihook_demo_plugin:Shout
whisper = ihook_demo_plugin:Whisper

[ihook.connectors]
demo = ihook_demo_plugin
"""

BROKEN_MODULE = '''
from marshmallow import Schema

from workflows import Step
from workflows.schema import StepConfig


class Transform2(Step):
    """Claims a built-in type."""

    type = "transform"
    Config = StepConfig


class Http2:
    kind = "http"
    Config = Schema


NOT_A_STEP = 42
'''

BROKEN_ENTRY_POINTS = """
[ihook.steps]
missing = ihook_no_such_module:Step
dup = ihook_broken_plugin:Transform2
number = ihook_broken_plugin:NOT_A_STEP

[ihook.connectors]
dup_http = ihook_broken_plugin:Http2
"""


def install(site: Path, module: str, dist: str, version: str, source: str, eps: str) -> None:
    """Lay out an installed distribution the way pip leaves it (module + dist-info)."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(eps).lstrip())


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site directory holding the demo plugin distribution."""
    install(
        tmp_path, "ihook_demo_plugin", "ihook-demo-plugin", "1.0", DEMO_MODULE, DEMO_ENTRY_POINTS
    )
    return tmp_path


@pytest.fixture
def broken_site(site: Path) -> Path:
    """The demo plugin plus a distribution whose every entry point is broken."""
    install(
        site, "ihook_broken_plugin", "ihook-broken-plugin", "0.1", BROKEN_MODULE,
        BROKEN_ENTRY_POINTS,
    )  # fmt: skip
    return site


def python(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


RUN_SCRIPT = """
import json

from connectors import build_connector, connector_class
from connectors.outbound import OutboundPolicy
from workflows import DefinitionError, Resources, run_workflow, step_class, validate_definition
from workflows.plugins import load_plugins

report = load_plugins()
assert load_plugins() == report  # loaded once; the second call is the cached report
definition = validate_definition({
    "name": "loud",
    "steps": [
        {"id": "loud", "type": "shout", "text": "data.name"},
        {"id": "soft", "type": "whisper", "text": "steps.loud"},
        {"id": "both", "type": "transform",
         "mapping": {"loud": "steps.loud", "soft": "steps.soft"}},
    ],
})
event = {"id": "evt_1", "type": "t", "source": "s", "data": {"name": "Ada"}, "headers": {}}
result = run_workflow(definition, event, resources=Resources(connectors={}))
try:
    validate_definition({"name": "bad", "steps": [{"id": "loud", "type": "shout"}]})
    invalid = None
except DefinitionError as exc:
    invalid = exc.errors
demo = build_connector("demo", {"greeting": "Hello"}, policy=OutboundPolicy())
print(json.dumps({
    "status": result.status,
    "output": result.output,
    "invalid": invalid,
    "greet": demo.greet("Ada"),
    "transform": step_class("transform").__module__,
    "http": connector_class("http").__module__,
    "report": [
        {"group": i.group, "name": i.name, "dist": i.distribution, "version": i.version,
         "provides": list(i.provides), "error": i.error}
        for i in report
    ],
}))
"""


def run_script(site: Path) -> dict[str, Any]:
    done = python(site, "-c", RUN_SCRIPT)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def rows(listing: str) -> dict[str, str]:
    """``ihook plugins`` lines keyed by ``group name``."""
    found = {}
    for line in listing.splitlines()[1:]:
        group, name, rest = line.split(None, 2)
        found[f"{group} {name}"] = rest
    return found


def test_ihook_plugins_lists_distribution_version_and_what_each_provides(site):
    done = python(site, "-m", "ihook", "plugins")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["GROUP", "NAME", "DISTRIBUTION", "PROVIDES"]
    listed = rows(done.stdout)
    assert listed["ihook.steps shout"].split() == ["ihook-demo-plugin", "1.0", "step", "shout"]
    assert listed["ihook.steps whisper"].split() == ["ihook-demo-plugin", "1.0", "step", "whisper"]
    assert listed["ihook.connectors demo"].split() == [
        "ihook-demo-plugin", "1.0", "connector", "demo",
    ]  # fmt: skip
    assert "BROKEN" not in done.stdout


def test_a_plugin_step_validates_and_runs_like_a_built_in_one(site):
    out = run_script(site)
    assert out["status"] == "succeeded"
    assert out["output"] == {"loud": "ADA", "soft": "ada"}
    assert out["invalid"] == {"steps.loud": {"text": ["Missing data for required field."]}}
    assert out["greet"] == "Hello, Ada"
    assert out["report"] == [
        {"group": "ihook.connectors", "name": "demo", "dist": "ihook-demo-plugin",
         "version": "1.0", "provides": ["demo"], "error": None},
        {"group": "ihook.steps", "name": "shout", "dist": "ihook-demo-plugin",
         "version": "1.0", "provides": ["shout"], "error": None},
        {"group": "ihook.steps", "name": "whisper", "dist": "ihook-demo-plugin",
         "version": "1.0", "provides": ["whisper"], "error": None},
    ]  # fmt: skip


def test_broken_plugins_are_reported_and_the_rest_still_load(broken_site):
    out = run_script(broken_site)
    assert out["status"] == "succeeded"
    assert out["output"] == {"loud": "ADA", "soft": "ada"}
    # The duplicates did not replace the built-ins.
    assert out["transform"] == "workflows.steps.transform"
    assert out["http"] == "connectors.http"
    errors = {i["name"]: i["error"] for i in out["report"] if i["error"]}
    assert set(errors) == {"missing", "dup", "number", "dup_http"}
    assert errors["missing"].startswith("ModuleNotFoundError: ")
    assert "ihook_no_such_module" in errors["missing"]
    assert errors["dup"].startswith("ValueError: step type 'transform' is already registered")
    assert errors["number"].startswith("TypeError: 42 is not a workflows.Step subclass")
    assert errors["dup_http"].startswith("ValueError: connector kind 'http' is already")
    broken = [i for i in out["report"] if i["error"]]
    assert {(i["dist"], i["version"], tuple(i["provides"])) for i in broken} == {
        ("ihook-broken-plugin", "0.1", ())
    }

    done = python(broken_site, "-m", "ihook", "plugins")
    assert done.returncode == 0, done.stderr
    listed = rows(done.stdout)
    assert listed["ihook.steps shout"].split() == ["ihook-demo-plugin", "1.0", "step", "shout"]
    assert listed["ihook.steps missing"].startswith("ihook-broken-plugin 0.1")
    assert "BROKEN: ModuleNotFoundError" in listed["ihook.steps missing"]
    assert "BROKEN: ValueError: step type 'transform'" in listed["ihook.steps dup"]
    assert "BROKEN: TypeError" in listed["ihook.steps number"]
    assert "BROKEN: ValueError: connector kind 'http'" in listed["ihook.connectors dup_http"]
    assert "WARNING" in done.stderr and "is broken" in done.stderr


def test_no_plugins_installed(tmp_path):
    done = python(tmp_path, "-m", "ihook", "plugins")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no plugins installed")
