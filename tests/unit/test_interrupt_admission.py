"""The pure rules of interrupt-safe admission and the thread storage report."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import Headers

from aegra.config import ConfigError, load
from aegra.domain.errors import Invalid
from aegra.domain.interrupt_admission import (
    HEADER,
    InterruptPending,
    check,
    leaves_interrupts_alone,
    mode,
)
from aegra.domain.thread_reports import storage_report

ASKED = {"task-1": [{"id": "i1", "value": {"question": "ok?"}, "when": "during"}]}


def test_mode_header_overrides_the_server_setting_in_any_header_shape() -> None:
    assert mode("allow", None) == "allow"
    assert mode("require_resume", {"other": "x"}) == "require_resume"
    assert mode("allow", Headers([("X-Aegra-Interrupt-Admission", " Require_Resume ")])
                ) == "require_resume"
    assert mode("require_resume", [(HEADER, "allow")]) == "allow"
    with pytest.raises(Invalid) as bad:
        mode("allow", {HEADER: "sometimes"})
    assert bad.value.field == HEADER and "sometimes" in bad.value.message


def test_only_new_input_without_a_command_can_discard_the_question() -> None:
    assert not leaves_interrupts_alone({"input": {"topic": "x"}})
    assert not leaves_interrupts_alone({"input": {}, "checkpoint_id": "c1"})
    assert leaves_interrupts_alone({"input": None})
    assert leaves_interrupts_alone({"input": {"x": 1}, "command": {"update": {"x": 2}}})
    assert leaves_interrupts_alone({"command": {"resume": "yes"}})


def test_check_names_every_pending_interrupt() -> None:
    check("t1", "interrupted", {})  # a static breakpoint: no question
    check("t1", "idle", ASKED)  # a stale cache on a thread that moved on
    with pytest.raises(InterruptPending) as refused:
        check("t1", "interrupted", {**ASKED, "task-2": [{"id": "i2", "value": "x" * 500}]})
    err = refused.value
    assert err.status == 409 and err.kind == "interrupt_pending"
    assert err.body == {"thread_id": "t1", "interrupts": [
        {"id": "i1", "value": {"question": "ok?"}}, {"id": "i2", "value": "x" * 500}]}
    assert "i1" in err.message and "i2" in err.message and len(err.message) < 400


def test_storage_report_sums_its_parts() -> None:
    report = storage_report("t1", (3, 300), [("messages", 2, 1000), ("trail", 3, 30)],
                            (4, 40))
    assert report == {
        "thread_id": "t1", "total_bytes": 1370,
        "checkpoints": {"count": 3, "bytes": 300},
        "channel_values": {"count": 5, "bytes": 1030, "by_channel": {
            "messages": {"versions": 2, "bytes": 1000},
            "trail": {"versions": 3, "bytes": 30}}},
        "pending_writes": {"count": 4, "bytes": 40}}
    empty = storage_report("t2", (0, 0), [], (0, 0))
    assert empty["total_bytes"] == 0 and empty["channel_values"]["by_channel"] == {}


def test_interrupt_admission_setting_from_env_and_refused_when_unknown() -> None:
    assert load(None, {}).config.runs.interrupt_admission == "allow"
    env = {"AEGRA_INTERRUPT_ADMISSION": "require_resume"}
    assert load(None, env).config.runs.interrupt_admission == "require_resume"
    with pytest.raises(ConfigError, match="interrupt_admission"):
        load(None, {"AEGRA_INTERRUPT_ADMISSION": "sometimes"})
