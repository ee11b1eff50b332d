"""Teams and routing: which team a handoff goes to, push and pull assignment, capacity,
availability, skills and languages, the queue draining in order, returning customers, and
transfers to a team, to the queue or to an unavailable agent. Real store (SQLite), in-process
broker, an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import QueueSettings, SettingsError, load_settings
from bot.core.errors import Conflict
from bot.core.models import Agent, Conversation
from handoff.routing import Candidate, availability, pick_agent, route
from tests.handoff.routing_support import routing_desk, routing_settings

# --- which team -------------------------------------------------------------------------------


def _queue(**extra: object) -> QueueSettings:
    return QueueSettings.model_validate(
        {
            "default_team": "front",
            "teams": [{"name": "front"}, {"name": "billing"}, {"name": "german"}],
            **extra,
        }
    )


def test_the_bots_team_wins_then_the_first_matching_rule_then_the_default() -> None:
    queue = _queue(
        routing=[
            {"team": "german", "languages": ["de"], "skills": ["german"]},
            {"team": "billing", "intents": ["refund", "invoice"], "priority": "high"},
            {"team": "billing", "vip": True, "channels": ["telegram"]},
        ]
    )
    assert route(queue, "billing", {"intent": "hello"}).team == "billing"
    german = route(queue, None, {"language": "DE", "intent": "refund"})
    assert (german.team, german.skills, german.rule) == ("german", ("german",), 0)
    refund = route(queue, None, {"intent": "refund", "language": "en"})
    assert (refund.team, refund.priority) == ("billing", "high")
    assert route(queue, None, {"vip": True, "channel": "telegram"}).team == "billing"
    assert route(queue, None, {"vip": True, "channel": "webchat"}).team == "front"
    # A team the bot names that gateway.yml does not know: the rules decide instead.
    assert route(queue, "no_such_team", {"intent": "invoice"}).team == "billing"
    assert route(queue, None, {}).team == "front"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"routing": [{"team": "nope"}]}, "routing[0]: unknown team 'nope'"),
        ({"default_team": "nope"}, "default_team 'nope' is not one of the teams"),
        (
            {
                "teams": [{"name": "a", "escalate_to": "b"}, {"name": "b", "escalate_to": "a"}],
                "default_team": "a",
            },
            "escalation from a runs in a circle",
        ),
        ({"teams": [{"name": "Front Line"}], "default_team": "Front Line"}, "pattern"),
    ],
)
def test_bad_team_settings_are_named(
    tmp_path: Path, extra: dict[str, object], message: str
) -> None:
    import yaml

    path = tmp_path / "gateway.yml"
    path.write_text(yaml.safe_dump({"secret_key": "x" * 32, "queue": extra}))
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(path, env={})


# --- which agent --------------------------------------------------------------------------------


def _agent(agent_id: int, **fields: object) -> Agent:
    from datetime import UTC, datetime

    base = {"capacity": 2, "skills": [], "languages": []}
    base.update(fields)
    return Agent(
        agent_id,
        f"a{agent_id}",
        f"A{agent_id}",
        "x",
        "agent",
        ["front"],
        datetime(2026, 1, 1, tzinfo=UTC),
        **base,  # type: ignore[arg-type]
    )


def _conversation(**fields: object) -> Conversation:
    from datetime import UTC, datetime

    from bot.core.state import ConversationState

    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Conversation(
        "c1",
        "cust",
        "webchat",
        "u",
        ConversationState.QUEUED,
        1,
        "front",
        "normal",
        None,
        False,
        0,
        now,
        now,
        **fields,  # type: ignore[arg-type]
    )


def test_least_busy_then_idle_longest_with_the_skills_and_language_asked() -> None:
    from datetime import UTC, datetime

    early, late = datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 1, 1, 10, tzinfo=UTC)
    busy = Candidate(_agent(1), open=1)
    idle_since_late = Candidate(_agent(2, last_assigned_at=late), open=0)
    idle_since_early = Candidate(_agent(3, last_assigned_at=early), open=0)
    full = Candidate(_agent(4, capacity=1), open=1)
    plain = _conversation()
    assert pick_agent([busy, idle_since_late, idle_since_early, full], plain) is idle_since_early
    assert pick_agent([busy, full], plain) is busy
    assert pick_agent([full], plain) is None
    german = Candidate(_agent(5, languages=["de"], skills=["billing"]), open=1)
    needs = _conversation(language="de", required_skills=["billing"])
    assert pick_agent([idle_since_early, german], needs) is german
    # An agent with no languages listed takes any language; skills are always needed.
    assert pick_agent([idle_since_early], _conversation(language="fr")) is idle_since_early
    assert pick_agent([idle_since_early], needs) is None
    # The customer's last agent, when they can take it, even if busier; never over capacity.
    assert pick_agent([busy, idle_since_early], plain, last_agent=1) is busy
    assert pick_agent([full, idle_since_early], plain, last_agent=4) is idle_since_early


def test_availability_is_what_the_agent_set_and_away_without_a_console() -> None:
    online, away = _agent(1), _agent(2, availability="away")
    offline = _agent(3, availability="offline")
    present = {"agent:1", "agent:2", "agent:3"}
    assert [availability(a, present) for a in (online, away, offline)] == [
        "online",
        "away",
        "offline",
    ]
    assert availability(online, set()) == "away"


# --- push and pull, end to end over the engine ---------------------------------------------------


async def test_push_assigns_the_least_busy_online_agent_with_room(tmp_path: Path) -> None:
    async with routing_desk(routing_settings(tmp_path)) as desk:
        ada = await desk.agent("ada", ["front"], capacity=1)
        bo = await desk.agent("bo", ["front"], capacity=2)
        await desk.agent("cy", ["front"], online=False)  # no console: away
        dee = await desk.agent("dee", ["front"])
        await desk.store.update_agent(dee.id, availability="offline")

        first = await desk.handoff()
        desk.clock.advance(seconds=1)
        second = await desk.handoff()
        desk.clock.advance(seconds=1)
        third = await desk.handoff()
        desk.clock.advance(seconds=1)
        fourth = await desk.handoff()
        owners = [(await desk.state(c))[1] for c in (first, second, third)]
        # ada and bo each got one (least busy, then idle longest), then bo's second seat.
        assert sorted(owners[:2]) == sorted([ada.id, bo.id]) and owners[2] == bo.id
        assert await desk.state(fourth) == ("queued", None)  # nobody has room
        texts = await desk.system_texts(first)
        assert any(t.endswith("from Front line joined the conversation.") for t in texts)
        assert not any("in the queue" in t for t in texts)  # pushed at once, never queued
        assert "You're number 1 in the queue for a person" in (await desk.system_texts(fourth))[0]


async def test_when_capacity_frees_the_oldest_of_the_highest_priority_goes_first(
    tmp_path: Path,
) -> None:
    async with routing_desk(routing_settings(tmp_path)) as desk:
        ada = await desk.agent("ada", ["front"], capacity=1)
        busy = await desk.handoff()
        assert await desk.state(busy) == ("assigned", ada.id)
        old_normal = await desk.handoff()
        desk.clock.advance(minutes=1)
        urgent = await desk.handoff(priority="urgent")
        desk.clock.advance(minutes=1)
        new_normal = await desk.handoff()
        waiting = await desk.engine.queue.items("front")
        assert waiting == [urgent.id, old_normal.id, new_normal.id]

        await desk.engine.desk.resolve(busy.id, ada)
        assert await desk.state(urgent) == ("assigned", ada.id)
        await desk.engine.desk.resolve(urgent.id, ada)
        assert await desk.state(old_normal) == ("assigned", ada.id)
        assert await desk.state(new_normal) == ("queued", None)


async def test_an_agent_coming_online_drains_the_queue_and_away_gets_nothing(
    tmp_path: Path,
) -> None:
    async with routing_desk(routing_settings(tmp_path)) as desk:
        ada = await desk.agent("ada", ["front"])
        ada = await desk.engine.desk.set_availability(ada, "away")
        waiting = await desk.handoff()
        assert await desk.state(waiting) == ("queued", None)
        position, eta, line = await desk.engine.starter.queue_position(waiting.id)
        # Nobody of the team is online: the wait is unknown, and the customer is told so.
        assert position == 1 and eta is None and "can't estimate the wait" in line

        await desk.engine.desk.set_availability(ada, "online")
        assert await desk.state(waiting) == ("assigned", ada.id)
        with pytest.raises(Exception, match="Availability must be one of"):
            await desk.engine.desk.set_availability(ada, "sleeping")


async def test_skills_and_languages_route_past_a_head_nobody_can_take(tmp_path: Path) -> None:
    settings = routing_settings(
        tmp_path,
        queue={"routing": [{"team": "front", "languages": ["de"], "skills": ["german"]}]},
    )
    async with routing_desk(settings) as desk:
        german = await desk.handoff(tracker={"slots": {"language": "de"}})
        desk.clock.advance(seconds=5)
        english = await desk.handoff()
        current = await desk.store.conversation(german.id)
        assert current is not None
        assert (current.language, current.required_skills) == ("de", ["german"])
        # An English-only agent comes online: the German conversation at the head waits for
        # someone who can take it, the one behind it does not wait for it.
        eve = await desk.agent("eve", ["front"], languages=["en"])
        await desk.engine.desk.set_availability(eve, "online")
        assert await desk.state(german) == ("queued", None)
        assert await desk.state(english) == ("assigned", eve.id)
        fritz = await desk.agent("fritz", ["front"], languages=["de", "en"], skills=["german"])
        await desk.engine.desk.set_availability(fritz, "online")
        assert await desk.state(german) == ("assigned", fritz.id)


async def test_a_returning_customer_goes_to_their_last_agent_only_when_available(
    tmp_path: Path,
) -> None:
    async with routing_desk(routing_settings(tmp_path)) as desk:
        ada = await desk.agent("ada", ["front"], capacity=3)
        first = await desk.handoff(user="maya")
        assert await desk.state(first) == ("assigned", ada.id)
        await desk.engine.desk.resolve(first.id, ada)
        bo = await desk.agent("bo", ["front"], capacity=3)
        await desk.handoff()  # someone else, so that ada is busier than bo
        desk.clock.advance(minutes=5)
        # Maya comes back on the same chat: ada again, though bo is less busy.
        again = await desk.handoff(user="maya")
        assert (await desk.state(again))[1] == ada.id
        await desk.engine.desk.resolve(again.id, ada)
        await desk.engine.desk.set_availability(ada, "away")
        third = await desk.handoff(user="maya")
        assert (await desk.state(third))[1] == bo.id


async def test_a_pull_team_waits_for_a_claim_and_one_claim_wins(tmp_path: Path) -> None:
    async with routing_desk(routing_settings(tmp_path)) as desk:
        kim = await desk.agent("kim", ["billing"])
        lee = await desk.agent("lee", ["billing"])
        waiting = await desk.handoff(team="billing")
        assert await desk.state(waiting) == ("queued", None)
        import asyncio

        results = await asyncio.gather(
            desk.engine.desk.claim(waiting.id, kim),
            desk.engine.desk.claim(waiting.id, lee),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Conflict) for r in results) == 1
        winner = (await desk.state(waiting))[1]
        assert winner in {kim.id, lee.id}
        texts = await desk.system_texts(waiting)
        assert sum("from Billing joined the conversation." in t for t in texts) == 1


async def test_transfer_to_a_team_to_the_queue_and_to_an_unavailable_agent(
    tmp_path: Path,
) -> None:
    async with routing_desk(routing_settings(tmp_path)) as desk:
        ada = await desk.agent("ada", ["front"])
        kim = await desk.agent("kim", ["billing"])
        away = await desk.agent("lee", ["billing"], online=False)
        conversation = await desk.handoff()
        assert await desk.state(conversation) == ("assigned", ada.id)

        with pytest.raises(Conflict, match="Lee is away"):
            await desk.engine.desk.transfer(conversation.id, ada, away.id)

        moved = await desk.engine.desk.transfer_to_team(conversation.id, ada, "billing")
        assert (moved.state.value, moved.team, moved.assigned_agent_id) == (
            "queued",
            "billing",
            None,
        )
        texts = await desk.system_texts(conversation)
        assert texts[-1].startswith("I've passed you to Billing, who will see our conversation")
        assert "You're number 1 in the queue for a person" in texts[-1]
        await desk.engine.desk.claim(conversation.id, kim)
        assert (await desk.system_texts(conversation))[-1] == (
            "Kim from Billing joined the conversation."
        )
        # Back to its own team's queue (billing is pull: it waits for a claim).
        back = await desk.engine.desk.transfer_to_team(conversation.id, kim, None)
        assert (back.state.value, back.team) == ("queued", "billing")
        with pytest.raises(Conflict, match="not assigned"):
            await desk.engine.desk.transfer_to_team(conversation.id, kim, "front")
        audit = [e["action"] for e in await desk.store.audit_log(conversation.id)]
        assert audit.count("transfer") == 2


async def test_at_opening_follow_ups_join_in_arrival_order_and_a_push_team_assigns_them(
    tmp_path: Path,
) -> None:
    closed = {"always_open": False, "timezone": "Europe/Berlin", "schedule": {}}
    settings = routing_settings(
        tmp_path,
        queue={
            "teams": [
                {
                    "name": "front",
                    "display_name": "Front line",
                    "assignment": "push",
                    "hours": closed,
                },
                {"name": "experts"},
            ]
        },
    )
    async with routing_desk(settings) as desk:
        ada = await desk.agent("ada", ["front"], capacity=1)
        first = await desk.handoff()
        desk.clock.advance(minutes=1)
        second = await desk.handoff()
        assert [(await desk.state(c))[0] for c in (first, second)] == ["pending_followup"] * 2
        assert (
            "a person will reply here as soon as we're back" in (await desk.system_texts(first))[-1]
        )
        assert await desk.engine.starter.reopen() == 0  # still closed

        front = settings.queue.team("front")
        assert front.hours is not None
        front.hours.always_open = True  # the team opens
        await desk.engine.starter.sweep()
        # The older follow-up goes to Ada; the other waits first in the queue and is told so.
        assert await desk.state(first) == ("assigned", ada.id)
        assert await desk.state(second) == ("queued", None)
        told = (await desk.system_texts(second))[-1]
        assert told.startswith("We're open now. You're number 1 in the queue for a person")
