"""Roles and the allow-list, checked in the library calls themselves (not only by hiding buttons)."""

from __future__ import annotations

import sqlite3

import pytest

from legalft import auth, costs
from legalft.audit import list_audit
from legalft.auth import User, acting_as, current_user, require, role_for, set_user
from legalft.budget import set_budget
from legalft.cli import main
from legalft.errors import AccessDenied, UsageError
from legalft.jobs import list_jobs

VIEWER = User(id="vera@firm.co.uk", name="Vera", role="viewer", source="sign-in")
TRAINER = User(id="tom@firm.co.uk", name="Tom", role="trainer", source="sign-in")
ADMIN = User(id="ada@firm.co.uk", name="Ada", role="admin", source="sign-in")
STRANGER = User(id="eve@elsewhere.example", name="Eve", role=None, source="sign-in")


def test_the_cli_user_is_the_os_user_and_an_admin_on_a_machine_of_its_own():
    user = current_user()
    assert user.id == f"os:{auth.os_user()}" and user.source == "cli" and user.role == "admin"


def test_allow_list_by_email_domain_and_os_user():
    set_user("Ada@Firm.co.uk", "admin")
    set_user("@firm.co.uk", "viewer")
    set_user("tom@firm.co.uk", "trainer")
    assert role_for("ada@firm.co.uk") == "admin"
    assert role_for("TOM@firm.co.uk") == "trainer"
    assert role_for("someone@firm.co.uk") == "viewer"  # the domain's role
    assert role_for("eve@elsewhere.example") is None
    # Once one OS user is listed, the others need their own entry.
    me = f"os:{auth.os_user()}"
    set_user("os:somebody-else", "viewer")
    assert role_for(me) is None
    with pytest.raises(AccessDenied, match="not on this studio's allow-list"):
        set_user(me, "admin")  # the CLI user lost its implicit admin
    with acting_as(ADMIN):
        set_user(me, "trainer")
    assert current_user().role == "trainer"
    with pytest.raises(AccessDenied):
        set_user("x@firm.co.uk", "admin")  # a trainer manages no users
    assert auth.list_users()[me] == "trainer"


@pytest.mark.parametrize("principal", ["alice", "@nodot", "a@b", "os:", "two@@firm.co.uk"])
def test_bad_principals_are_refused(principal):
    with pytest.raises(UsageError, match="not a user"):
        set_user(principal, "viewer")
    with pytest.raises(UsageError, match="unknown role"):
        set_user("alice@firm.co.uk", "owner")


def test_a_viewer_calling_trainer_actions_through_the_library_is_refused(tmp_path):
    from legalft.data.registry import register_dataset
    from legalft.serve import start_server, stop_server
    from legalft.train import cancel_job, load_recipe, merge_run, resume_job, start_training

    data = tmp_path / "clean.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    calls = {
        "train.start": lambda: start_training(load_recipe("smoke"), data),
        "train.cancel": lambda: cancel_job("local-x"),
        "train.resume": lambda: resume_job("local-x"),
        "train.merge": lambda: merge_run("local-x"),
        "serve.start": lambda: start_server("smoke"),
        "serve.stop": lambda: stop_server(1),
        "dataset.register": lambda: register_dataset(data, "mine"),
    }
    with acting_as(VIEWER):
        for name, call in calls.items():
            with pytest.raises(AccessDenied, match=f"vera@firm.co.uk is a viewer; {name} needs the trainer role"):
                call()
    assert list_jobs() == []  # nothing started
    denied = list_audit(outcome="denied")
    assert sorted(e.action for e in denied) == sorted(calls)
    assert {e.user_id for e in denied} == {"vera@firm.co.uk"} and {e.role for e in denied} == {"viewer"}


def test_admin_actions_need_an_admin():
    from legalft.managed import delete_model, deploy_checkpoint

    for user in (VIEWER, TRAINER):
        with acting_as(user):
            for call in (lambda: costs.set_price_override("token_factory.training.small", 1.0),
                         lambda: costs.clear_price_override("token_factory.training.small"),
                         lambda: set_budget("managed", 10.0),
                         lambda: deploy_checkpoint("tf-x", name="n"),
                         lambda: delete_model("some/model:1"),
                         lambda: set_user("x@firm.co.uk", "viewer")):
                with pytest.raises(AccessDenied, match="needs the admin role"):
                    call()
    with acting_as(STRANGER), pytest.raises(AccessDenied, match="not on this studio's allow-list"):
        require("viewer", "chat")
    anonymous = User(id="anonymous", name="not signed in", role=None, source="sign-in")
    with acting_as(anonymous), pytest.raises(AccessDenied, match="sign in first"):
        require("viewer", "chat")


def test_pages_by_role():
    assert auth.visible_pages(VIEWER) == {"Home", "Monitor", "Evaluate", "Costs", "Chat", "Activity"}
    assert auth.visible_pages(TRAINER) == auth.visible_pages(VIEWER) | {"Dataset", "Train"}
    assert auth.visible_pages(STRANGER) == set()


def test_users_command(capsys):
    assert main(["users", "add", "@firm.co.uk", "--role", "viewer"]) == 0
    assert main(["users", "add", "ada@firm.co.uk", "--role", "admin"]) == 0
    assert main(["users", "list"]) == 0
    out = capsys.readouterr().out
    assert "@firm.co.uk  viewer" in out and "ada@firm.co.uk  admin" in out
    assert main(["users", "add", "nobody", "--role", "viewer"]) == 2
    assert "not a user" in capsys.readouterr().err
    assert main(["users", "remove", "@firm.co.uk"]) == 0
    assert "@firm.co.uk" not in auth.list_users()
    rows = list_audit(action_prefix="users")
    assert [r.target for r in rows] == ["@firm.co.uk", "ada@firm.co.uk", "@firm.co.uk"]
    assert {r.user_id for r in rows} == {f"os:{auth.os_user()}"} and {r.source for r in rows} == {"cli"}


def test_roles_are_checked_by_the_database_too():
    from legalft.db import connect

    with pytest.raises(sqlite3.IntegrityError), connect() as conn:
        conn.execute("INSERT INTO users VALUES ('a@b.co', 'owner', 'me', 'now')")
