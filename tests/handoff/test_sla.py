"""SLA clocks with an injected clock: warnings and breaches at the stored deadlines, each acted
on once even by two replicas sweeping together, escalation up the tiers, the clocks an agent's
reply and a resolve stop, and targets counted in business hours across a night and a holiday."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import HoursSettings, Settings
from bot.core.hours import add_open_time
from bot.wiring import build_engine
from tests.handoff.routing_support import START, routing_desk, routing_settings

SLA = {
    "sla": [
        {
            "teams": ["front", "experts"],
            "first_response_minutes": 10,
            "next_response_minutes": 5,
            "resolution_minutes": 60,
            "business_hours": False,
            "on_warning": ["notify"],
            "on_breach": ["notify", "raise_priority", "escalate"],
        }
    ]
}


def sla_settings(tmp: Path, **extra: Any) -> Settings:
    return routing_settings(tmp, **{**SLA, **extra})


async def actions(desk: Any, conversation_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e["action"], e["details"])
        for e in await desk.store.audit_log(conversation_id)
        if e["action"].startswith("sla_")
    ]


def test_business_hours_skip_nights_weekends_and_holidays() -> None:
    hours = HoursSettings(
        always_open=False,
        timezone="Europe/Berlin",
        schedule={"mon": "09:00-17:00", "tue": "09:00-17:00", "fri": "22:00-02:00"},
        holidays=[date(2026, 12, 1)],  # a Tuesday
    )
    monday_1630 = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # 16:30 in Berlin
    # 30 minutes on Monday; Tuesday is a holiday; Wednesday and Thursday are closed; Friday
    # opens at 22:00 and runs past midnight: 30 more minutes end at 22:30 on Friday.
    assert add_open_time(hours, monday_1630, 3600) == datetime(2026, 12, 4, 21, 30, tzinfo=UTC)
    friday_2330 = datetime(2026, 12, 4, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    # Across midnight: 2 hours from 23:30 are 30 minutes short of 02:00, then Monday 09:00.
    assert add_open_time(hours, friday_2330, 3 * 3600) == datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    assert add_open_time(HoursSettings(), monday_1630, 60) == monday_1630 + timedelta(minutes=1)


async def test_warning_then_breach_each_acted_on_once_by_two_replicas(tmp_path: Path) -> None:
    async with routing_desk(sla_settings(tmp_path)) as desk:
        # A second replica: its own engine over the same store and broker.
        other = build_engine(
            desk.settings, desk.store, desk.broker, desk.engine.service.ctx.rasa, clock=desk.clock
        )
        waiting = await desk.handoff()  # nobody in the team: it waits
        clock = await desk.store.clock(
            (await desk.store.current_handoff(waiting.id)).id,  # type: ignore[union-attr]
            "first_response",
        )
        assert clock is not None
        assert clock.due_at == START + timedelta(minutes=10)
        assert clock.warn_at == START + timedelta(minutes=8)

        desk.clock.advance(minutes=7)
        assert await desk.engine.starter.sla.sweep() == 0  # nothing due yet
        subscription = await desk.broker.subscribe("console")
        desk.clock.advance(minutes=1, seconds=30)
        counts = await asyncio.gather(desk.engine.starter.sla.sweep(), other.starter.sla.sweep())
        assert sorted(counts) == [0, 1]
        assert [a for a, _ in await actions(desk, waiting.id)] == ["sla_warning"]
        frame = await subscription.get(timeout=2)
        while frame.get("type") != "sla":
            frame = await subscription.get(timeout=2)
        assert frame["level"] == "warning" and frame["kind"] == "first_response"
        snapshot = {i["conversation_id"]: i for i in await desk.engine.queue.snapshot()}
        assert snapshot[waiting.id]["sla"]["state"] == "warning"
        assert snapshot[waiting.id]["sla"]["seconds_left"] == 90

        desk.clock.advance(minutes=2)
        counts = await asyncio.gather(desk.engine.starter.sla.sweep(), other.starter.sla.sweep())
        assert sorted(counts) == [0, 1]
        log = await actions(desk, waiting.id)
        assert [a for a, _ in log] == ["sla_warning", "sla_breach"]
        breach = log[1][1]
        assert breach["kind"] == "first_response" and breach["priority"] == "high"
        assert breach["escalated_to"] == "experts"
        # Counted once, by the replica that acted on it.
        breaches = [
            engine.metrics.sla_breaches.labels(clock.team, "first_response")._value.get()
            for engine in (desk.engine, other)
        ]
        assert sorted(breaches) == [0, 1]
        await subscription.close()


async def test_breaches_escalate_front_line_to_experts_to_supervisors(tmp_path: Path) -> None:
    async with routing_desk(sla_settings(tmp_path)) as desk:
        waiting = await desk.handoff(priority="low")
        desk.clock.advance(minutes=11)
        await desk.engine.starter.sla.sweep()
        moved = await desk.store.conversation(waiting.id)
        assert moved is not None
        assert (moved.team, moved.priority, moved.state.value) == ("experts", "normal", "queued")
        assert await desk.engine.queue.items("front") == []
        assert await desk.engine.queue.items("experts") == [waiting.id]
        # The experts get their own target for the first response, from the escalation.
        handoff = await desk.store.current_handoff(waiting.id)
        assert handoff is not None and handoff.team == "experts"
        clock = await desk.store.clock(handoff.id, "first_response")
        assert clock is not None and clock.team == "experts" and clock.breached_at is None
        assert clock.due_at == desk.clock.now + timedelta(minutes=10)

        desk.clock.advance(minutes=11)
        await desk.engine.starter.sla.sweep()
        moved = await desk.store.conversation(waiting.id)
        assert moved is not None
        # Supervisors are the last tier, without a policy of their own: it stays there.
        assert (moved.team, moved.priority) == ("supervisors", "high")
        desk.clock.advance(minutes=30)
        await desk.engine.starter.sla.sweep()
        moved = await desk.store.conversation(waiting.id)
        assert moved is not None and moved.team == "supervisors"
        escalations = [d.get("escalated_to") for a, d in await actions(desk, waiting.id)]
        assert "experts" in escalations and "supervisors" in escalations


async def test_an_agents_reply_stops_the_response_clocks_and_a_resolve_stops_all(
    tmp_path: Path,
) -> None:
    async with routing_desk(sla_settings(tmp_path)) as desk:
        ada = await desk.agent("ada", ["front"])
        conversation = await desk.handoff()
        assert (await desk.state(conversation))[1] == ada.id  # pushed at once
        desk.clock.advance(minutes=3)
        await desk.engine.desk.agent_reply(conversation.id, ada, "Hi, I'm looking at it.")
        handoff = await desk.store.current_handoff(conversation.id)
        assert handoff is not None
        first = await desk.store.clock(handoff.id, "first_response")
        assert first is not None and first.stopped_at == desk.clock.now

        # The customer writes again: the next-response clock starts, the reply stops it.
        desk.clock.advance(minutes=1)
        current = await desk.store.conversation(conversation.id)
        assert current is not None
        await desk.engine.starter.customer_waiting(current)
        running = await desk.store.clock(handoff.id, "next_response")
        assert running is not None and running.due_at == desk.clock.now + timedelta(minutes=5)
        desk.clock.advance(minutes=4, seconds=30)
        assert await desk.engine.starter.sla.sweep() == 1  # its warning
        await desk.engine.desk.agent_reply(conversation.id, ada, "Done: refund on its way.")
        desk.clock.advance(minutes=10)
        assert await desk.engine.starter.sla.sweep() == 0  # stopped: no breach

        await desk.engine.desk.resolve(conversation.id, ada)
        desk.clock.advance(hours=2)
        assert await desk.engine.starter.sla.sweep() == 0  # resolution stopped too
        assert [a for a, _ in await actions(desk, conversation.id)] == ["sla_warning"]


async def test_targets_in_business_hours_wait_for_the_team_to_open(tmp_path: Path) -> None:
    settings = sla_settings(
        tmp_path,
        hours={
            "always_open": False,
            "timezone": "Europe/Berlin",
            "schedule": {"wed": "08:00-10:05", "thu": "08:00-18:00"},
        },
        sla=[{"first_response_minutes": 10, "business_hours": True}],
    )
    async with routing_desk(settings) as desk:
        # Wednesday 10:00 in Berlin: five minutes before closing.
        waiting = await desk.handoff()
        handoff = await desk.store.current_handoff(waiting.id)
        assert handoff is not None
        clock = await desk.store.clock(handoff.id, "first_response")
        assert clock is not None
        # 5 minutes today, the other 5 after Thursday's 08:00 opening.
        assert clock.due_at == datetime(2026, 11, 26, 7, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"teams": ["nope"], "first_response_minutes": 5}, r"sla\[0\]: unknown team 'nope'"),
        ({"first_response_minutes": 0}, "greater than 0"),
        ({"warn_at": 1.5}, "less than 1"),
        ({"on_breach": ["page_the_ceo"]}, "on_breach"),
    ],
)
def test_bad_sla_policies_are_named(tmp_path: Path, policy: dict[str, Any], message: str) -> None:
    import yaml

    from bot.config import SettingsError, load_settings

    path = tmp_path / "gateway.yml"
    path.write_text(yaml.safe_dump({"secret_key": "x" * 32, "sla": [policy]}))
    with pytest.raises(SettingsError, match=message):
        load_settings(path, env={})
