"""The pure cron-run rules: a firing runs as the cron's owner, clients never see the owner,
and ``plan`` says why an occurrence made no run."""

from __future__ import annotations

import datetime as dt

from aegra.domain import crons
from aegra.services.runs import build_params

OWNER = {"identity": "alice", "permissions": ["read"], "display_name": "Alice",
         "is_authenticated": True}
ASSISTANT = {"assistant_id": "a", "graph_id": "g", "config": {"tags": ["t"]}, "context": {}}
T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def _cron(**kw):
    row = {"cron_id": "c1", "assistant_id": "a", "thread_id": None, "user_id": "alice",
           "on_run_completed": "keep", "metadata": {"team": "x"},
           "payload": {"input": {"x": 1}, "metadata": {"m": 1}, crons.OWNER_KEY: OWNER}}
    row.update(kw)
    return row


def test_a_firing_runs_as_the_owner_without_the_cron_metadata():
    run = crons.cron_run(_cron(), ASSISTANT, T0, build_params)
    configurable = run.params["config"]["configurable"]
    assert configurable["langgraph_auth_user"] == OWNER
    assert configurable["langgraph_auth_user_id"] == "alice"
    assert configurable["langgraph_auth_permissions"] == ["read"]
    assert run.user_id == "alice" and run.metadata == {} and run.stateless
    assert run.params["metadata"] == {} and run.params["input"] == {"x": 1}
    assert crons.OWNER_KEY not in str(run.params)  # the owner rides in config only
    assert run.params["cron"] == {"cron_id": "c1", "scheduled_at": T0.isoformat()}


def test_an_owner_never_recorded_is_the_identity_alone_and_none_is_anonymous():
    legacy = crons.cron_run(_cron(payload={"input": {}}), ASSISTANT, None, build_params)
    user = legacy.params["config"]["configurable"]["langgraph_auth_user"]
    assert user["identity"] == "alice" and user["permissions"] == []
    anonymous = crons.cron_run(_cron(user_id=None, payload={"input": {}}), ASSISTANT, None,
                               build_params)
    assert "langgraph_auth_user" not in anonymous.params["config"].get("configurable", {})
    assert anonymous.user_id is None


def test_clients_never_see_the_owner():
    row = {**_cron(), "created_at": T0, "next_run_date": None}
    view = crons.cron_view(row)
    assert crons.OWNER_KEY not in view["payload"] and view["payload"]["input"] == {"x": 1}
    assert view["created_at"] == "2030-01-01T12:00:00+00:00"
    assert crons.OWNER_KEY in row["payload"]  # the row itself is left alone
    assert list(view) == [k for k in crons.COLUMNS if k in view]


def _claimed(**kw):
    row = {**_cron(), "schedule": "* * * * *", "timezone": None, "end_time": None,
           "next_run_date": T0, "db_now": T0, "graph_id": "g",
           "assistant_config": {}, "assistant_context": {}}
    row.update(kw)
    return row


def test_plan_says_why_an_occurrence_makes_no_run():
    over = crons.plan(_claimed(end_time=T0 - dt.timedelta(minutes=1)), grace_s=10,
                      build=build_params)
    assert over.run is None and over.next_run_date is None and over.why == "past end_time"
    bad = crons.plan(_claimed(schedule="not a schedule"), grace_s=10, build=build_params)
    assert bad.run is None and bad.why is not None and "schedule" in bad.why
    moved = crons.plan(_claimed(timezone="Gone/Away"), grace_s=10, build=build_params)
    assert moved.run is not None and "UTC" in (moved.why or "")
    assert moved.next_run_date == T0 + dt.timedelta(minutes=1)
    fine = crons.plan(_claimed(), grace_s=10, build=build_params)
    assert fine.run is not None and fine.why is None and fine.run.user_id == "alice"
