"""Gateway settings: gateway.yml, with ${ENV} substitution for secrets, validated at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config_defaults import DEFAULT_DISPOSITIONS

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(ValueError):
    """The settings file is missing, unreadable or invalid; the message names the key."""


def secret_length(minimum: int, when_empty: str) -> Any:
    """A validator for an optional secret: empty turns its feature off, else ``minimum``
    characters at least."""

    def check(value: str) -> str:
        if value and len(value) < minimum:
            raise ValueError(f"must be at least {minimum} characters (or empty: {when_empty})")
        return value

    return check


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = None
    # A connection that has not sent a whole request (headers) this long after it opened, or
    # after its last answer, is closed; a request body must arrive within body_timeout.
    idle_timeout_seconds: float = Field(15.0, gt=0)
    body_timeout_seconds: float = Field(20.0, gt=0)
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client: the rate
    # limits and the sign-in throttle then count the client, not the proxy.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value


class RasaSettings(_Section):
    # Several URLs = several Rasa replicas; a conversation always goes to the same one.
    urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:5005"], min_length=1)
    token: str | None = None
    timeout_seconds: float = Field(20.0, gt=0)
    # While Rasa is down, pending messages are retried this often...
    retry_seconds: float = Field(5.0, gt=0)
    # ...and a customer who waited this long is offered a person.
    offer_human_after_seconds: float = Field(60.0, ge=0)


class HandoffPolicySettings(_Section):
    """Gateway-side handoff triggers; they work with any Rasa bot."""

    request_intents: list[str] = Field(default_factory=lambda: ["request_human"])
    intents: list[str] = Field(default_factory=lambda: ["complaint"])
    fallback_intent: str = "nlu_fallback"
    consecutive_fallbacks: int = Field(2, ge=0)
    low_confidence_threshold: float = Field(0.5, ge=0, le=1)
    low_confidence_streak: int = Field(3, ge=0)
    keywords: list[str] = Field(default_factory=lambda: ["lawyer", "chargeback", "data breach"])


PRIORITIES = ("urgent", "high", "normal", "low")
_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class HoursSettings(_Section):
    """Opening hours of the human team; outside them a handoff becomes a follow-up."""

    always_open: bool = True
    timezone: str = "UTC"
    # weekday (mon..sun) -> "08:00-20:00"; a missing day is closed; "22:00-06:00" runs past
    # midnight into the next morning.
    schedule: dict[str, str] = Field(default_factory=dict)
    # Days the team is closed whatever the schedule says (YYYY-MM-DD).
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Europe/Berlin") from None
        return value

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: dict[str, str]) -> dict[str, str]:
        days = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
        for day, span in value.items():
            if day not in days:
                raise ValueError(f"unknown weekday {day!r}; use {sorted(days)}")
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", span):
                raise ValueError(f"{day}: {span!r} is not like 08:00-20:00")
            if span[:5] == span[6:]:
                raise ValueError(f"{day}: {span!r} opens and closes at the same time")
        return value


class TeamSettings(_Section):
    """A team: its queue, how conversations reach its agents, its hours and its next tier."""

    name: str = Field(pattern=_NAME)
    display_name: str | None = None
    # pull: agents claim from the queue; push: the gateway assigns to the least busy agent
    # who is online and has room (ties: the one idle longest).
    assignment: Literal["pull", "push"] = "pull"
    # The team's own opening hours; none: the gateway's ``hours:``.
    hours: HoursSettings | None = None
    # Where an SLA breach escalates to (the next tier), if anywhere.
    escalate_to: str | None = None
    # Asked after the rating when the team resolves (docs/metrics.md): ces (how easy, 1-7)
    # and nps (would recommend, 0-10; at most once per customer per queue.nps_every_days).
    surveys: list[Literal["ces", "nps"]] = Field(default_factory=list)

    @property
    def title(self) -> str:
        return self.display_name or self.name.replace("_", " ").capitalize()


class RoutingRule(_Section):
    """Sends a handoff to ``team`` when every condition given matches (an empty list matches
    anything); the first matching rule wins."""

    team: str
    intents: list[str] = Field(default_factory=list)
    products: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    vip: bool | None = None
    # Only agents with all of these skills get the conversation pushed or offered.
    skills: list[str] = Field(default_factory=list)
    priority: Literal["urgent", "high", "normal", "low"] | None = None


class Disposition(_Section):
    """What a problem really was, picked by the agent at resolve (the wrap-up). ``intents``:
    the bot's intents that preselect it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    title: str = Field(min_length=1, max_length=80)
    intents: list[str] = Field(default_factory=list)


class QueueSettings(_Section):
    default_team: str = "general"
    teams: list[TeamSettings] = Field(
        default_factory=lambda: [
            TeamSettings(name="general", display_name="Customer care"),
            TeamSettings(name="orders", display_name="Orders and delivery"),
            TeamSettings(name="tech_support", display_name="Technical support"),
        ]
    )
    routing: list[RoutingRule] = Field(default_factory=list)
    # A customer is asked the NPS question at most once in this many days.
    nps_every_days: int = Field(90, ge=1)
    # The wrap-up's list: what a problem really was (the last one is the catch-all).
    dispositions: list[Disposition] = Field(
        default_factory=lambda: [Disposition(**d) for d in DEFAULT_DISPOSITIONS], min_length=1
    )
    # Used for the first wait estimates, until real handoffs give a measured average.
    average_handle_seconds: float = Field(240.0, gt=0)
    # An agent whose console has been gone this long counts as away (no pushes, no transfers).
    away_after_seconds: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _known_teams(self) -> QueueSettings:
        names = [team.name for team in self.teams]
        if len(set(names)) != len(names):
            raise ValueError(f"teams: a team name is listed twice in {names}")
        known = set(names)
        if self.default_team not in known:
            raise ValueError(f"default_team {self.default_team!r} is not one of the teams {names}")
        for index, rule in enumerate(self.routing):
            if rule.team not in known:
                raise ValueError(f"routing[{index}]: unknown team {rule.team!r}; teams: {names}")
        for team in self.teams:
            if team.escalate_to is not None and team.escalate_to not in known:
                raise ValueError(
                    f"teams: {team.name} escalates to unknown team {team.escalate_to!r}"
                )
        for team in self.teams:  # the tiers must end somewhere
            seen, current = {team.name}, team.escalate_to
            while current is not None:
                if current in seen:
                    raise ValueError(f"teams: escalation from {team.name} runs in a circle")
                seen.add(current)
                current = self.team(current).escalate_to
        return self

    def team(self, name: str | None) -> TeamSettings:
        """The team called ``name``; the default team for None or an unknown name."""
        for team in self.teams:
            if team.name == name:
                return team
        return next(team for team in self.teams if team.name == self.default_team)

    def knows(self, name: object) -> bool:
        return any(team.name == name for team in self.teams)

    def disposition_for(self, intent: str | None) -> str:
        """The disposition the bot's intent preselects (the last one, the catch-all, else)."""
        for disposition in self.dispositions:
            if intent is not None and intent in disposition.intents:
                return disposition.name
        return self.dispositions[-1].name


WarningAction = Literal["notify", "raise_priority"]
BreachAction = Literal["notify", "raise_priority", "escalate"]
_WARN: tuple[WarningAction, ...] = ("notify",)
_BREACH: tuple[BreachAction, ...] = ("notify", "raise_priority", "escalate")


class SlaPolicy(_Section):
    """Service-level targets for the conversations of some teams and priorities (empty lists:
    all); the first policy that matches a conversation applies. Minutes are counted in the
    team's opening hours when ``business_hours``, around the clock otherwise."""

    teams: list[str] = Field(default_factory=list)
    priorities: list[Literal["urgent", "high", "normal", "low"]] = Field(default_factory=list)
    # Handoff to the first agent reply; each customer message waiting for an agent's reply;
    # handoff to resolve. None: no target.
    first_response_minutes: float | None = Field(None, gt=0)
    next_response_minutes: float | None = Field(None, gt=0)
    resolution_minutes: float | None = Field(None, gt=0)
    business_hours: bool = True
    # The warning comes at this share of a target.
    warn_at: float = Field(0.8, gt=0, lt=1)
    on_warning: list[WarningAction] = Field(default_factory=lambda: list(_WARN))
    on_breach: list[BreachAction] = Field(default_factory=lambda: list(_BREACH))

    def applies(self, team: str | None, priority: str) -> bool:
        return (not self.teams or team in self.teams) and (
            not self.priorities or priority in self.priorities
        )


class LimitSettings(_Section):
    max_message_chars: int = Field(4000, ge=1)
    # Public web chat: new sessions per client address, customer messages per conversation
    # (both per minute), open sockets per visitor; all across replicas with Redis.
    sessions_per_minute_per_address: int = Field(30, ge=1)
    messages_per_minute_per_conversation: int = Field(30, ge=1)
    sockets_per_visitor: int = Field(5, ge=1)


# Every type bot/core/files.py can recognise in a file's bytes (a test keeps them equal).
FILE_CONTENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)


class S3Settings(_Section):
    """An S3-compatible bucket for the files (AWS S3, MinIO, Ceph, R2, ...). Path-style
    addresses: ``{endpoint_url}/{bucket}/{prefix}{file id}``."""

    endpoint_url: str = Field(min_length=1)
    bucket: str = Field(min_length=3, max_length=63)
    region: str = "us-east-1"
    access_key_id: str = Field(min_length=1)
    secret_access_key: str = Field(min_length=1)
    # Folders in the bucket, e.g. "csbot/files/": letters, digits, ".", "_" and "-" (nothing
    # that would need escaping in an address, so every S3 implementation signs it alike).
    prefix: str = Field("", pattern=r"^([A-Za-z0-9._-]+/)*$")
    timeout_seconds: float = Field(20.0, gt=0)


class FileSettings(_Section):
    """Pictures and files customers and agents send (docs/widget.md, docs/console.md)."""

    # "local": a directory (``dir``), for one gateway or replicas sharing a volume; "s3": a
    # bucket every replica reaches (``s3:``).
    storage: Literal["local", "s3"] = "local"
    s3: S3Settings | None = None
    # Where LocalFileStorage keeps the bytes (relative to the working directory).
    dir: str = "var/files"
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Content types found in the bytes (bot/core/files.py); nothing else is taken.
    types: list[str] = Field(default_factory=lambda: list(FILE_CONTENT_TYPES))

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        known = set(FILE_CONTENT_TYPES)
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown types {unknown}; the gateway can take {sorted(known)}")
        return value

    @model_validator(mode="after")
    def _s3_when_chosen(self) -> FileSettings:
        if self.storage == "s3" and self.s3 is None:
            raise ValueError("storage is s3: give the bucket under files.s3 (docs/security.md)")
        return self


class BackendSettings(_Section):
    """The shop backend the bot's actions use, read by the console's customer profile
    (``GET {url}/backend/customers/{id}?token=``; rasa_addons/action_server.py). No url: the
    profile shows the conversations only."""

    url: str | None = None
    token: str | None = None
    timeout_seconds: float = Field(3.0, gt=0, le=30)

    @field_validator("url", "token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _token_with_url(self) -> BackendSettings:
        if self.url and not self.token:
            raise ValueError("backend.url is set but backend.token is empty (BACKEND_TOKEN)")
        return self


class QualityAlertSettings(_Section):
    """Quality alerts (handoff/quality.py, docs/metrics.md): contacts about one problem in the
    current hour far above that problem's own hourly baseline."""

    enabled: bool = True
    # The hourly baseline: the problem's contacts over this many days before the hour.
    baseline_days: int = Field(14, ge=1, le=90)
    # Alert when at least this many customers wrote about it in the hour...
    min_contacts: int = Field(5, ge=2)
    # ...and a Poisson count with the baseline's mean reaches that many with at most this
    # probability.
    p_value: float = Field(0.001, gt=0, lt=0.5)
    # How often each replica looks (the alert itself is stored once).
    check_every_seconds: float = Field(60.0, gt=0)
    # A Slack channel id (C...) the alert is posted to through the outbox (the Slack channel
    # must be on, and the app invited to it); empty: the dashboard only.
    slack_channel: str = ""


class PrivacySettings(_Section):
    """What is masked in customer messages before they are stored or reach the bot. Payment
    card numbers (Luhn-checked) always are; e-mail addresses and phone numbers on request."""

    mask_emails: bool = False
    mask_phones: bool = False


class IdentitySettings(_Section):
    """Identity verification: the secret the shop's server shares with the gateway to vouch
    for signed-in web visitors (docs/security.md). Empty: the widget cannot pass a user, and
    customers verify with the bot's second factor only."""

    shop_secret: str = ""
    # The demo shop page (/) signs visitors in as demo customers with shop_secret. Anyone can,
    # so never turn this on for a public gateway (`make run` turns it on).
    demo_sign_in: bool = False

    _shop_secret_length = field_validator("shop_secret")(secret_length(16, "no shop identity"))


class MetricsSettings(_Section):
    """``GET /metrics`` (Prometheus) answers only a request with ``Authorization: Bearer
    <token>``; an empty token turns the endpoint off (404)."""

    token: str = ""
    # First-contact resolution and durable containment: a customer who asks for a person again
    # within this many hours of a resolve (or of a conversation the bot finished) was not helped.
    return_window_hours: float = Field(72.0, gt=0, le=24 * 90)
    # A customer message the bot understood with less confidence than this counts as
    # low-confidence on the dashboard (the designers' loop reads the same).
    low_confidence: float = Field(0.6, gt=0, lt=1)
    # The bot's domain, for the designers' export (its intents; relative to the working
    # directory, which `make run` sets to the repository).
    domain_file: str = "domain.yml"

    _token_length = field_validator("token")(secret_length(16, "no /metrics"))


class TelegramSettings(_Section):
    """A Telegram bot. An empty token leaves the channel off."""

    token: str = ""
    # Webhook mode when public_url is set (Telegram must reach it over HTTPS); polling otherwise.
    public_url: str | None = None
    # Telegram allows 1-256 of A-Z a-z 0-9 _ -; empty means unset.
    secret_token: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{0,256}$")
    api_base_url: str = "https://api.telegram.org"

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> TelegramSettings:
        if self.token and self.public_url and not self.secret_token:
            raise ValueError("webhook mode (public_url set) needs secret_token")
        return self


class SlackSettings(_Section):
    """A Slack app (Events API over HTTP). An empty bot token leaves the channel off."""

    bot_token: str = ""
    signing_secret: str = ""
    api_base_url: str = "https://slack.com/api/"

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token)

    @model_validator(mode="after")
    def _needs_signing_secret(self) -> SlackSettings:
        if self.bot_token and not self.signing_secret:
            raise ValueError("signing_secret is required when bot_token is set")
        return self


class ChannelsSettings(_Section):
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)


class DemoAgentSettings(_Section):
    """A supervisor created at start when it does not exist yet, but only with a password of
    the operator's (``make run`` generates one): no account ever has a known password."""

    username: str = "demo"
    password: str = ""
    display_name: str = "Sam (demo agent)"
    # Also two agents with the same password: alex in the front-line teams (every team that
    # escalates somewhere) and kim in the teams they escalate to, so escalation can be seen.
    colleagues: bool = False

    _password_length = field_validator("password")(secret_length(10, "no demo agent"))


class Settings(_Section):
    http: HttpSettings = Field(default_factory=HttpSettings)
    database_url: str = "sqlite:///var/gateway.sqlite3"
    redis_url: str | None = None
    secret_key: str = Field(min_length=16)
    rasa: RasaSettings = Field(default_factory=RasaSettings)
    handoff: HandoffPolicySettings = Field(default_factory=HandoffPolicySettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    hours: HoursSettings = Field(default_factory=HoursSettings)
    sla: list[SlaPolicy] = Field(default_factory=list)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    files: FileSettings = Field(default_factory=FileSettings)
    backend: BackendSettings = Field(default_factory=BackendSettings)
    quality_alerts: QualityAlertSettings = Field(default_factory=QualityAlertSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    channels: ChannelsSettings = Field(default_factory=ChannelsSettings)
    csat_prompt: str = (
        "Thanks for your patience! How did we do? Please rate this conversation "
        "from 1 (poor) to 5 (excellent)."
    )
    ces_prompt: str = (
        "One more: how easy was it to get this sorted out? From 1 (very hard) to 7 (very easy)."
    )
    nps_prompt: str = (
        "And how likely are you to recommend Brightline to a friend? From 0 (not at all) to "
        "10 (extremely likely)."
    )
    demo_agent: DemoAgentSettings | None = None
    log_format: str = Field("console", pattern="^(console|json)$")
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _sla_teams_known(self) -> Settings:
        for index, policy in enumerate(self.sla):
            for team in policy.teams:
                if not self.queue.knows(team):
                    raise ValueError(f"sla[{index}]: unknown team {team!r}")
        return self

    def hours_of(self, team: str | None) -> HoursSettings:
        """A team's opening hours: its own, or the gateway's (None: the default team's)."""
        return self.queue.team(team).hours or self.hours

    def sla_policy(self, team: str | None, priority: str) -> SlaPolicy | None:
        """The SLA policy of a conversation of ``team`` and ``priority``, if any."""
        return next((p for p in self.sla if p.applies(team, priority)), None)


def substitute_env(value: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; a missing VAR without default fails."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise SettingsError(
                f"{where or 'settings'}: environment variable {name} is not set "
                f"(set it, or write ${{{name}:-default}})"
            )

        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {
            k: substitute_env(v, env, f"{where}.{k}" if where else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [substitute_env(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; DATABASE_URL, REDIS_URL and RASA_TOKEN override the file."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise SettingsError(f"{path}: file not found") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError(f"{path}: the top level must be a mapping of settings")
        raw = substitute_env(loaded or {}, env)
    if env.get("DATABASE_URL"):
        raw["database_url"] = env["DATABASE_URL"]
    if env.get("REDIS_URL"):
        raw["redis_url"] = env["REDIS_URL"]
    if env.get("RASA_TOKEN"):
        raw.setdefault("rasa", {})["token"] = env["RASA_TOKEN"]
    if env.get("GATEWAY_SECRET_KEY"):
        raw["secret_key"] = env["GATEWAY_SECRET_KEY"]
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"{path or 'settings'}: {problems}") from None
