"""``/api/v1/users`` and ``ihook user``: console users, managed with the admin scope; the
password is write-only and no answer (nor any output of the CLI) holds it or its hash."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from ihook.cli import main
from ihook.services.users import SignInRefused, verify_password
from tests.conftest import SWEEP, settings_env

PASSWORD = "copper-lantern-quiet-58"
"""A password good enough for the rules; the log sweep checks no log holds it."""
NEW_PASSWORD = "saffron-meadow-brisk-14"
SWEEP.constants += (PASSWORD, NEW_PASSWORD)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def no_secret(answer) -> None:
    """Neither a password nor its hash is in the answer; no user in it has a password."""
    text = answer.get_data(as_text=True)
    for secret in (PASSWORD, NEW_PASSWORD, "scrypt:"):
        assert secret not in text, (secret, text)
    if answer.status_code < 300 and answer.json is not None:
        shown = answer.json if isinstance(answer.json, list) else [answer.json]
        assert all({"password", "password_hash"}.isdisjoint(user) for user in shown), shown


def create(client, username: str = "alice", **fields):
    body = {"username": username, "password": PASSWORD, "scopes": ["read"], **fields}
    answer = client.post("/api/v1/users", json=body)
    no_secret(answer)
    return answer


def test_users_are_created_read_changed_and_deleted(client, platform):
    made = create(client, "Alice", scopes=["read", "write"], display_name="Alice A.")
    assert made.status_code == 201, made.json
    user = made.json
    assert user["id"].startswith("usr_") and user["username"] == "Alice"
    assert (user["display_name"], user["scopes"], user["enabled"]) == (
        "Alice A.",
        ["read", "write"],
        True,
    )
    assert user["last_sign_in_at"] is None and user["password_changed_at"]
    listed = client.get("/api/v1/users")
    no_secret(listed)
    assert [u["username"] for u in listed.json] == ["Alice"]
    one = client.get(f"/api/v1/users/{user['id']}")
    no_secret(one)
    assert one.json == user
    changed = client.patch(
        f"/api/v1/users/{user['id']}",
        json={
            "display_name": None,
            "scopes": ["admin"],
            "enabled": False,
            "password": NEW_PASSWORD,
        },
    )
    no_secret(changed)
    assert changed.status_code == 200, changed.json
    assert (changed.json["display_name"], changed.json["scopes"], changed.json["enabled"]) == (
        None,
        ["admin"],
        False,
    )
    assert changed.json["password_changed_at"] > user["password_changed_at"]
    with platform.db.read() as session, pytest.raises(SignInRefused) as caught:
        verify_password(session, "alice", NEW_PASSWORD)
    assert caught.value.reason == "user disabled"  # said only when the (new) password matches
    gone = client.delete(f"/api/v1/users/{user['id']}")
    assert gone.status_code == 204 and gone.get_data() == b""
    for method in ("get", "patch", "delete"):
        answer = getattr(client, method)(f"/api/v1/users/{user['id']}", json={})
        assert answer.status_code == 404, (method, answer.json)
    assert client.get("/api/v1/users").json == []


def test_a_name_is_taken_whatever_its_case(client):
    assert create(client, "bob").status_code == 201
    taken = create(client, "BOB")
    assert taken.status_code == 409 and taken.json["message"] == "the user name 'BOB' is taken"
    assert taken.json["errors"]["json"] == {"username": ["already taken"]}


def test_bad_requests_are_422_naming_the_field(client):
    good = {"username": "carol", "password": PASSWORD, "scopes": ["read"]}
    for changes, field in [
        ({"username": None}, "username"),
        ({"username": "no spaces"}, "username"),
        ({"password": None}, "password"),
        ({"password": "too-short"}, "password"),
        ({"password": "CAROL"}, "password"),
        ({"scopes": ["root"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": None}, "scopes"),
        ({"password_hash": "x"}, "password_hash"),
        ({"display_name": "x" * 201}, "display_name"),
    ]:
        body = {key: value for key, value in {**good, **changes}.items() if value is not None}
        answer = client.post("/api/v1/users", json=body)
        no_secret(answer)
        assert answer.status_code == 422, (body, answer.json)
        assert field in answer.json["errors"]["json"], (body, answer.json)
    equal = client.post(
        "/api/v1/users",
        json={"username": "carol-carol1", "password": "CAROL-CAROL1", "scopes": ["read"]},
    )
    assert equal.status_code == 422
    assert equal.json["errors"]["json"] == {"password": ["must not be the user name"]}
    assert client.get("/api/v1/users").json == []
    made = create(client, "dave").json
    for changes, field in [
        ({"scopes": []}, "scopes"),
        ({"password": "short"}, "password"),
        ({"username": "eve"}, "username"),
        ({"enabled": "maybe"}, "enabled"),
    ]:
        answer = client.patch(f"/api/v1/users/{made['id']}", json=changes)
        assert answer.status_code == 422, (changes, answer.json)
        assert field in answer.json["errors"]["json"], (changes, answer.json)


def test_only_admin_tokens_manage_users(client):
    made = create(client, "frank").json
    for scope in ("read", "write", "publish"):
        token = client.post("/api/v1/tokens", json={"name": scope, "scopes": [scope]}).json
        for method, path in [
            ("get", "/api/v1/users"),
            ("post", "/api/v1/users"),
            ("get", f"/api/v1/users/{made['id']}"),
            ("patch", f"/api/v1/users/{made['id']}"),
            ("delete", f"/api/v1/users/{made['id']}"),
        ]:
            answer = getattr(client.raw, method)(path, headers=bearer(token["token"]), json={})
            assert answer.status_code == 403, (scope, method, path, answer.json)
            assert "lacks the 'admin' scope" in answer.json["message"]
    admin = client.post("/api/v1/tokens", json={"name": "a", "scopes": ["admin"]}).json["token"]
    assert client.raw.get("/api/v1/users", headers=bearer(admin)).status_code == 200
    assert client.raw.get("/api/v1/users").status_code == 401


def test_the_openapi_document_keeps_the_password_write_only(client):
    spec = client.raw.get("/api/openapi.json").json
    for name in ("User", "UserUpdate"):
        password = spec["components"]["schemas"][name]["properties"]["password"]
        assert password["writeOnly"] is True and password["description"]
    paths = spec["paths"]
    assert set(paths["/api/v1/users"]) >= {"get", "post"}
    assert set(paths["/api/v1/users/{user_id}"]) >= {"get", "patch", "delete"}
    assert {"409", "422"} <= set(paths["/api/v1/users"]["post"]["responses"])
    assert "404" in paths["/api/v1/users/{user_id}"]["patch"]["responses"]
    assert all(op["summary"] for op in paths["/api/v1/users/{user_id}"].values() if "summary" in op)


def test_the_cli_creates_a_user_in_its_own_process(settings, platform):
    done = subprocess.run(
        [sys.executable, "-m", "ihook", "user", "create", "Grace", "--scope", "write"],
        env=settings_env(settings),
        input=f"{PASSWORD}\n{PASSWORD}\n",  # typed twice at the prompt
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("created user Grace (usr_")
    assert PASSWORD not in done.stdout + done.stderr
    with platform.db.read() as session:
        assert verify_password(session, "grace", PASSWORD).scopes == ["write"]


@pytest.fixture
def ihook(settings):
    """Run ``ihook user …`` through the click entry (in process, the settings' environment);
    answers (exit code, output)."""
    runner = CliRunner(env=settings_env(settings))

    def run(*args: str, stdin: str = "") -> tuple[int, str]:
        done = runner.invoke(main, ["user", *args], input=stdin)
        for secret in (PASSWORD, NEW_PASSWORD, "scrypt:"):
            assert secret not in done.output
        return done.exit_code, done.output.strip()

    return run


def test_the_cli_lists_changes_and_deletes_users(ihook, platform):
    stdin = f"{PASSWORD}\n"
    assert (
        ihook(
            "create",
            "Heidi",
            "--scope",
            "read",
            "--scope",
            "write",
            "--password-stdin",
            stdin=stdin,
        )[0]
        == 0
    )
    assert (
        ihook("create", "ivan", "--display-name", "Ivan I.", "--password-stdin", stdin=stdin)[0]
        == 0
    )
    code, out = ihook("list")
    heidi, ivan = (line.split("\t") for line in out.splitlines())
    assert heidi[1:] == ["Heidi", "-", "read,write", "enabled", "never signed in"]
    assert ivan[1:] == ["ivan", "Ivan I.", "read", "enabled", "never signed in"]
    changed = ihook("set-password", "heidi", stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert changed[0] == 0 and changed[1].endswith("password of Heidi changed")
    with platform.db.read() as session:
        assert verify_password(session, "HEIDI", NEW_PASSWORD).id == heidi[0]
    assert ihook("disable", "HEIDI") == (0, "disabled Heidi")
    assert ihook("list")[1].splitlines()[0].split("\t")[4] == "disabled"
    assert ihook("enable", "heidi") == (0, "enabled Heidi")
    assert ihook("delete", "heidi") == (0, "deleted Heidi")
    assert [line.split("\t")[1] for line in ihook("list")[1].splitlines()] == ["ivan"]


def test_the_cli_explains_its_refusals(ihook):
    code, out = ihook("create", "judy", "--password-stdin", stdin="short\n")
    assert code == 1 and "invalid user: password: at least 12 characters" in out
    code, out = ihook("create", "judy", stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    assert code == 1 and "do not match" in out
    assert ihook("create", "judy", "--password-stdin", stdin=f"{PASSWORD}\n")[0] == 0
    code, out = ihook("create", "JUDY", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert code == 1 and "the user name 'JUDY' is taken" in out
    code, out = ihook("create", "bad name", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert code == 1 and "invalid user: username: letters, digits" in out
    code, out = ihook("set-password", "nobody", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert code == 1 and "no user 'nobody'" in out
    assert ihook("disable", "nobody")[0] == 1 and ihook("delete", "nobody")[0] == 1
    code, out = ihook("create", "kate", "--scope", "root", "--password-stdin", stdin="x\n")
    assert code == 2 and "root" in out
