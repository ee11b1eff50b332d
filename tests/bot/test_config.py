"""Settings loading: defaults, ${ENV} substitution, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yml"
    path.write_text(text)
    return path


def test_repo_gateway_yml_loads_with_its_env() -> None:
    settings = load_settings(
        REPO / "gateway.yml", {"GATEWAY_SECRET_KEY": "s" * 32, "RASA_TOKEN": "tok"}
    )
    assert settings.http.port == 8080
    assert settings.rasa.token == "tok"
    assert settings.handoff.consecutive_fallbacks == 4
    # No account with a known password: without DEMO_AGENT_PASSWORD there is no demo agent.
    assert settings.demo_agent is not None and settings.demo_agent.password == ""
    with_password = load_settings(
        REPO / "gateway.yml",
        {"GATEWAY_SECRET_KEY": "s" * 32, "DEMO_AGENT_PASSWORD": "generated-once-1"},
    )
    assert with_password.demo_agent is not None
    assert with_password.demo_agent.password == "generated-once-1"


def test_a_short_demo_password_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "secret_key: ${KEY}\ndemo_agent:\n  password: demo\n")
    with pytest.raises(SettingsError, match=r"demo_agent\.password"):
        load_settings(path, {"KEY": "k" * 20})


def test_env_substitution_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "secret_key: ${KEY}\nrasa:\n  urls: ['${RASA:-http://r:1}']\n")
    settings = load_settings(path, {"KEY": "k" * 20})
    assert settings.secret_key == "k" * 20 and settings.rasa.urls == ["http://r:1"]
    assert settings.limits.max_message_chars == 4000
    assert settings.handoff.consecutive_fallbacks == 2  # the documented default


def test_missing_env_var_names_key_and_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "secret_key: ${NOPE}\n")
    with pytest.raises(SettingsError, match=r"secret_key: environment variable NOPE is not set"):
        load_settings(path, {})


def test_invalid_values_are_reported_by_key(tmp_path: Path) -> None:
    path = write(tmp_path, "secret_key: short\nhttp: {port: 99999}\nunknown_key: 1\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path, {})
    text = str(err.value)
    assert "secret_key" in text and "http.port" in text and "unknown_key" in text


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(write(tmp_path, "a: [1,\n"), {})
    with pytest.raises(SettingsError, match="file not found"):
        load_settings(tmp_path / "missing.yml", {})


def test_bad_schedule(tmp_path: Path) -> None:
    path = write(tmp_path, "secret_key: " + "k" * 20 + "\nhours: {schedule: {funday: '8-9'}}\n")
    with pytest.raises(SettingsError, match="unknown weekday"):
        load_settings(path, {})


def test_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "secret_key: " + "k" * 20 + "\n")
    settings = load_settings(
        path, {"DATABASE_URL": "postgresql+asyncpg://x/y", "REDIS_URL": "redis://r:6379/1"}
    )
    assert settings.database_url == "postgresql+asyncpg://x/y"
    assert settings.redis_url == "redis://r:6379/1"


def test_channels_off_by_default_and_on_with_env() -> None:
    env = {"GATEWAY_SECRET_KEY": "s" * 32}
    settings = load_settings(REPO / "gateway.yml", env)
    assert not settings.channels.telegram.enabled and not settings.channels.slack.enabled
    settings = load_settings(
        REPO / "gateway.yml",
        {
            **env,
            "TELEGRAM_BOT_TOKEN": "123:abc",
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "shh",
        },
    )
    assert settings.channels.telegram.enabled and settings.channels.slack.enabled
    assert not settings.channels.telegram.public_url  # polling


def test_channel_settings_are_checked(tmp_path: Path) -> None:
    base = "secret_key: " + "k" * 20 + "\n"
    slack = write(tmp_path, base + "channels: {slack: {bot_token: xoxb-1}}\n")
    with pytest.raises(SettingsError, match="signing_secret is required"):
        load_settings(slack, {})
    tg = write(tmp_path, base + "channels: {telegram: {token: 't', public_url: 'https://x'}}\n")
    with pytest.raises(SettingsError, match="needs secret_token"):
        load_settings(tg, {})
    bad = write(tmp_path, base + "channels: {telegram: {token: t, secret_token: 'a b'}}\n")
    with pytest.raises(SettingsError, match="secret_token"):
        load_settings(bad, {})
