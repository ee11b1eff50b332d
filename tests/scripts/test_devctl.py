"""The developer control script: finding Python 3.10, the training hash, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts import devctl


def test_missing_python310_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSBOT_PYTHON310", "/nonexistent/python3.10")
    with pytest.raises(devctl.SetupError) as err:
        devctl.find_python310()
    message = str(err.value)
    assert "Rasa 3.6 needs Python 3.10" in message
    assert "pyenv install 3.10" in message and "CSBOT_PYTHON310" in message


def test_wrong_python_version_is_not_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSBOT_PYTHON310", sys.executable)  # the gateway's 3.11
    with pytest.raises(devctl.SetupError):
        devctl.find_python310()


def test_setup_fails_with_the_message_from_the_command_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CSBOT_PYTHON310": str(tmp_path / "nope"),
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, str(devctl.ROOT / "scripts" / "devctl.py"), "setup"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error: Rasa 3.6 needs Python 3.10" in result.stderr


def test_python310_is_found_on_this_machine() -> None:
    exe = devctl.find_python310()
    assert devctl._python_version(exe) == (3, 10)


def test_model_hash_follows_training_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path
    (root / "data").mkdir()
    (root / "requirements").mkdir()
    for name in ("config.yml", "domain.yml", "requirements/rasa.txt", "data/nlu.yml"):
        (root / name).write_text("a")
    monkeypatch.setattr(devctl, "ROOT", root)
    first = devctl.model_hash()
    assert devctl.model_hash() == first
    (root / "data" / "nlu.yml").write_text("b")
    assert devctl.model_hash() != first
    (root / "data" / "nlu.yml").write_text("a")
    assert devctl.model_hash() == first
    (root / "data" / "rules.yml").write_text("a")
    assert devctl.model_hash() != first


def test_model_is_restored_from_cache_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devctl, "MODELS", tmp_path / "models")
    monkeypatch.setenv("CSBOT_CACHE", str(tmp_path / "cache"))
    digest = devctl.model_hash()
    cached = tmp_path / "cache" / "models" / f"{digest}.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"model bytes")

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not train when the cache has the model")

    monkeypatch.setattr(devctl, "run_with_progress", no_training)
    model = devctl.train()
    assert model.read_bytes() == b"model bytes"
    assert devctl.train() == model  # second call: already in models/


def test_failed_long_command_shows_the_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devctl, "ROOT", tmp_path)
    with pytest.raises(devctl.SetupError) as err:
        devctl.run_with_progress(
            [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
            "demo step",
            tmp_path / "log.txt",
            cwd=tmp_path,
        )
    assert "demo step failed (exit 3)" in str(err.value) and "boom" in str(err.value)
