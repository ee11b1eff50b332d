"""``python -m bot agents add/set/list``: teams, skills, languages, capacity and availability
from the command line, with clear errors for unknown teams, agents and bad values."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import yaml

from bot.__main__ import main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
                "secret_key": "cli-secret-key-0123456789abcdef",
                "queue": {
                    "default_team": "front",
                    "teams": [{"name": "front"}, {"name": "experts"}],
                },
            }
        )
    )
    return path


def run(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-enough-password\n"))
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_set_and_list_an_agents_routing_profile(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(
        config,
        capsys,
        monkeypatch,
        "agents",
        "add",
        "alex",
        "--password-stdin",
        "--skill",
        "Refunds",
        "--capacity",
        "4",
    )
    assert code == 0 and "agent alex" in out
    code, out, _ = run(config, capsys, monkeypatch, "agents", "set", "alex")
    # No team given: the default team; skills are stored in lower case.
    assert out.strip() == "alex: teams front; skills refunds; languages any; capacity 4; online"
    code, out, _ = run(
        config,
        capsys,
        monkeypatch,
        "agents",
        "set",
        "alex",
        "--team",
        "front,experts",
        "--language",
        "de",
        "--language",
        "EN",
        "--availability",
        "away",
    )
    assert code == 0
    assert out.strip() == (
        "alex: teams experts, front; skills refunds; languages de, en; capacity 4; away"
    )
    code, out, _ = run(config, capsys, monkeypatch, "agents", "list")
    assert "alex" in out and "experts,front" in out and "cap 4" in out and "away" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["set", "nobody"], 1, "there is no agent named 'nobody'"),
        (["set", "alex", "--team", "billing"], 2, "unknown team 'billing'; the teams in"),
        (["set", "alex", "--capacity", "500"], 2, "--capacity must be from 0 to 100"),
        (["add", "bo", "--team", "nope", "--password-stdin"], 2, "unknown team 'nope'"),
    ],
)
def test_bad_agent_commands_say_what_is_wrong(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    message: str,
) -> None:
    assert run(config, capsys, monkeypatch, "agents", "add", "alex", "--password-stdin")[0] == 0
    got, _, err = run(config, capsys, monkeypatch, "agents", *args)
    assert got == code and message in err
    with pytest.raises(SystemExit):
        main(["--config", str(config), "agents", "set", "alex", "--availability", "asleep"])
