"""Command line: `python -m bot serve | migrate | agents add/list`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from bot import chat
from bot.app import create_app, server_options
from bot.config import Settings, SettingsError, load_settings
from bot.core.clock import utcnow
from bot.core.errors import DuplicateAgent
from bot.core.models import Agent
from bot.logs import configure_logging
from bot.store import Store
from connectors.registry import channel_summary
from handoff import training
from handoff.auth import hash_password

DEFAULT_CONFIG = Path("gateway.yml")


class PathOnlyAccessLog(AbstractAccessLogger):
    """Access log without query strings: the widget's socket URL carries the visitor token."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.1fms',
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time * 1000,
        )


def _settings(args: argparse.Namespace) -> Settings:
    path: Path | None = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_settings(path)


def cmd_serve(args: argparse.Namespace) -> int:
    # Opt in to how PTB 23 gives durations (RetryAfter.retry_after as a timedelta); without it PTB
    # warns about the change every time Telegram rate-limits us. _retry_after() reads both forms.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    host = args.host or settings.http.host
    port = args.port if args.port is not None else settings.http.port
    print(f"gateway listening on http://{host}:{port} (console: /console)", flush=True)
    for channel, status in channel_summary(settings).items():
        print(f"    channel {channel:<9} {status}", flush=True)
    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        print=None,
        access_log_class=PathOnlyAccessLog,
        **server_options(settings),
    )
    return 0


@contextlib.asynccontextmanager
async def _migrated_store(settings: Settings) -> AsyncIterator[Store]:
    """The store at ``database_url``, its schema brought up to date, closed afterwards."""
    store = await Store.connect(settings.database_url)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


async def _migrate(settings: Settings) -> None:
    async with _migrated_store(settings):
        pass


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    asyncio.run(_migrate(settings))
    print("database schema is up to date")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif os.environ.get("AGENT_PASSWORD"):
        password = os.environ["AGENT_PASSWORD"]
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != password:
            raise SystemExit("error: the passwords differ; nothing was changed")
    if len(password) < 8:
        raise SystemExit("error: the password needs at least 8 characters; nothing was changed")
    return password


async def _add_agent(settings: Settings, args: argparse.Namespace, password: str) -> str:
    async with _migrated_store(settings) as store:
        agent = await store.add_agent(
            args.username,
            args.name or args.username,
            hash_password(password),
            role=args.role,
            teams=_names(args.team) or [settings.queue.default_team],
            skills=_names(args.skill),
            languages=_names(args.language),
            capacity=args.capacity if args.capacity is not None else 3,
        )
        return f"agent {agent.username} (id {agent.id}, {agent.role}) added"


def _names(values: list[str] | None) -> list[str]:
    """Repeated or comma-separated names, lower case, sorted, once each."""
    return sorted({n.strip().lower() for v in values or [] for n in v.split(",") if n.strip()})


def _unknown_teams(settings: Settings, teams: list[str]) -> str | None:
    unknown = [t for t in teams if not settings.queue.knows(t)]
    if not unknown:
        return None
    known = ", ".join(t.name for t in settings.queue.teams)
    return f"error: unknown team {unknown[0]!r}; the teams in gateway.yml are: {known}"


async def _set_agent(settings: Settings, args: argparse.Namespace) -> str | None:
    changes: dict[str, object] = {}
    for key, values in (("teams", args.team), ("skills", args.skill), ("languages", args.language)):
        if values is not None:
            changes[key] = _names(values)
    if args.capacity is not None:
        changes["capacity"] = args.capacity
    if args.availability is not None:
        changes["availability"] = args.availability
    async with _migrated_store(settings) as store:
        agent = await store.agent_by_username(args.username)
        if agent is None:
            return None
        if not changes:
            return _describe_agent(agent)
        return _describe_agent(await store.update_agent(agent.id, **changes))


def _describe_agent(a: Agent) -> str:
    return (
        f"{a.username}: teams {', '.join(a.teams) or '-'}; skills {', '.join(a.skills) or '-'}; "
        f"languages {', '.join(a.languages) or 'any'}; capacity {a.capacity}; {a.availability}"
    )


def cmd_agents_set(args: argparse.Namespace) -> int:
    settings = _settings(args)
    problem = _unknown_teams(settings, _names(args.team))
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.capacity is not None and not 0 <= args.capacity <= 100:
        print("error: --capacity must be from 0 to 100", file=sys.stderr)
        return 2
    done = asyncio.run(_set_agent(settings, args))
    if done is None:
        print(f"error: there is no agent named {args.username!r}", file=sys.stderr)
        return 1
    print(done)
    return 0


def cmd_agents_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
    problem = _unknown_teams(settings, _names(args.team))
    if problem:
        print(problem, file=sys.stderr)
        return 2
    password = _read_password(args)
    try:
        print(asyncio.run(_add_agent(settings, args, password)))
    except DuplicateAgent:
        print(f"error: an agent named {args.username!r} already exists", file=sys.stderr)
        return 1
    return 0


async def _set_password(settings: Settings, username: str, password: str) -> str | None:
    async with _migrated_store(settings) as store:
        agent = await store.agent_by_username(username)
        if agent is None:
            return None
        await store.set_agent_password(agent.id, hash_password(password), end_sessions=True)
        return f"password of {agent.username} changed; their console sessions have ended"


def cmd_agents_passwd(args: argparse.Namespace) -> int:
    settings = _settings(args)
    password = _read_password(args)
    done = asyncio.run(_set_password(settings, args.username, password))
    if done is None:
        print(f"error: there is no agent named {args.username!r}", file=sys.stderr)
        return 1
    print(done)
    return 0


async def _list_agents(settings: Settings) -> list[str]:
    async with _migrated_store(settings) as store:
        return [
            f"{a.id:>4}  {a.username:<20} {a.role:<10} {a.display_name:<20} "
            f"{','.join(a.teams) or '-':<24} cap {a.capacity:<3} {a.availability}"
            for a in await store.agents()
        ]


def cmd_agents_list(args: argparse.Namespace) -> int:
    for line in asyncio.run(_list_agents(_settings(args))):
        print(line)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    user = None
    if args.user_id or args.user_hash:
        if not (args.user_id and args.user_hash):
            print("error: --user-id and --user-hash go together", file=sys.stderr)
            return 2
        user = {"id": args.user_id, "hash": args.user_hash}
    return asyncio.run(chat.run(args.url, sys.stdin, sys.stdout, user))


def cmd_export_training(args: argparse.Namespace) -> int:
    """Write the designers' export (handoff/training.py) into --out."""
    settings = _settings(args)
    now = utcnow()
    try:
        start = training.since_start(args.since, now)
        intents = training.domain_intents(Path(args.domain or settings.metrics.domain_file))
    except training.ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out or Path("var") / "export" / f"{now:%Y-%m-%d}"

    async def run() -> training.TrainingExport:
        async with _migrated_store(settings) as store:
            return await training.export_training(
                store,
                start=start,
                end=now,
                intents=intents,
                low_confidence=settings.metrics.low_confidence,
                command=f"python -m bot export-training --since {args.since}",
            )

    print(f"reading the conversations since {start:%Y-%m-%d %H:%M} UTC ...", flush=True)
    export = asyncio.run(run())
    out.mkdir(parents=True, exist_ok=True)
    (out / "nlu.yml").write_text(export.nlu, encoding="utf-8")
    (out / "test_stories.yml").write_text(export.stories, encoding="utf-8")
    print(f"wrote {out / 'nlu.yml'} and {out / 'test_stories.yml'}:")
    for line in training.summary_lines(export.summary, export.skeletons):
        print(line)
    print("next: review them, move the examples you keep into data/, then make test-bot")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Brightline gateway")
    parser.add_argument("--config", type=Path, help="settings file (default: ./gateway.yml)")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the gateway (default command)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(
        func=cmd_migrate
    )
    agents = sub.add_parser("agents", help="manage console agents").add_subparsers(
        dest="agents_command", required=True
    )
    add = agents.add_parser("add", help="add an agent (asks for the password)")
    add.add_argument("username")
    add.add_argument("--name", help="display name shown to customers")
    add.add_argument("--role", choices=["agent", "supervisor"], default="agent")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=cmd_agents_add)
    change = agents.add_parser(
        "set", help="set an agent's teams, skills, languages, capacity or availability"
    )
    change.add_argument("username")
    change.add_argument(
        "--availability", choices=["online", "away", "offline"], help="as the console's switch"
    )
    change.set_defaults(func=cmd_agents_set)
    for command in (add, change):
        command.add_argument(
            "--team", action="append", help="team name (repeatable, or comma-separated)"
        )
        command.add_argument("--skill", action="append", help="skill (repeatable)")
        command.add_argument(
            "--language", action="append", help="language code, e.g. de (none: any)"
        )
        command.add_argument(
            "--capacity", type=int, help="conversations pushed at once (default 3)"
        )
    passwd = agents.add_parser(
        "passwd", help="set an agent's new password (ends all their console sessions)"
    )
    passwd.add_argument("username")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    passwd.set_defaults(func=cmd_agents_passwd)
    agents.add_parser("list", help="list agents").set_defaults(func=cmd_agents_list)
    talk = sub.add_parser(
        "chat", help="chat with the running product from the terminal, as a web customer"
    )
    talk.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's address")
    talk.add_argument("--user-id", help="a shop user id, signed in (needs --user-hash)")
    talk.add_argument("--user-hash", help="HMAC-SHA256(shop secret, user id), hex")
    talk.set_defaults(func=cmd_chat)
    export = sub.add_parser(
        "export-training",
        help="write what the bot did not handle as Rasa YAML for the bot designers",
    )
    export.add_argument("--since", default="7d", help="the period: 24h, 7d, 2w (default 7d)")
    export.add_argument("--out", type=Path, help="a directory (default var/export/<date>)")
    export.add_argument("--domain", help="the bot's domain file (default metrics.domain_file)")
    export.set_defaults(func=cmd_export_training)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv or sys.argv[1:]), "serve"])
    try:
        result: int = args.func(args)
        return result
    except SettingsError as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
