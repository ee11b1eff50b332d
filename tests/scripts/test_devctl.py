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
    second = devctl.model_hash()
    for litter in (".nlu.yml.swp", "nlu.yml~", "#nlu.yml#", ".#nlu.yml"):
        (root / "data" / litter).write_text("an editor's")
    assert devctl.model_hash() == second, "an editor's swap and backup files are not data"


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


def copy_of_the_bot(tmp_path: Path) -> Path:
    """The bot's training files in a folder of their own, to break on purpose."""
    bot = tmp_path / "bot"
    bot.mkdir()
    for name in ("domain.yml", "config.yml"):
        (bot / name).write_text((devctl.ROOT / name).read_text())
    (bot / "data").mkdir()
    for path in (devctl.ROOT / "data").glob("*.yml"):
        (bot / "data" / path.name).write_text(path.read_text())
    return bot


def test_a_typo_in_a_rule_is_found_before_training_and_named_on_screen(tmp_path: Path) -> None:
    bot = copy_of_the_bot(tmp_path)
    rules = bot / "data" / "rules.yml"
    rules.write_text(
        rules.read_text().replace(
            "      - action: utter_password_reset", "      - action: utter_password_rest"
        )
    )
    with pytest.raises(devctl.SetupError) as err:
        devctl.validate_data(bot)
    message = str(err.value)
    assert "nothing was trained" in message
    named = message.split("The lines that name the problem:")[1].split("Last lines of")[0]
    assert "utter_password_rest" in named


def test_the_shipped_bot_data_validates(tmp_path: Path) -> None:
    devctl.validate_data(copy_of_the_bot(tmp_path))


def test_problem_lines_pick_the_line_that_matters_out_of_a_long_listing() -> None:
    listing = [f"  - action_{n}" for n in range(40)]
    output = "\n".join(
        [
            "2026-11-28 01:00:00 INFO  rasa.validator - Validating intents...",
            "/x/site-packages/rasa/core/foo.py:12: DeprecationWarning: old",
            "  warnings.warn(",
            "rasa.shared.exceptions.RasaException: Cannot access action 'utter_store_location',"
            " as that name is not a registered action for this domain. Available actions are:",
            *listing,
        ]
    )
    found = devctl.problem_lines(output)
    assert found == [
        "rasa.shared.exceptions.RasaException: Cannot access action 'utter_store_location', as "
        "that name is not a registered action for this domain. Available actions are:"
    ]
    report = devctl.problem_report(output, "var/logs/train.log")
    assert report.index("Cannot access action") < report.index("Last lines of")


def test_nlu_figures_count_rejections_handoffs_and_macro_f1() -> None:
    def p(gold: str, predicted: str) -> dict[str, object]:
        return {"intent": gold, "prediction": predicted, "confidence": 0.9}

    predictions = [
        p("greet", "greet"),
        p("greet", "nlu_fallback"),  # in scope, wrongly rejected
        p("order_status", "order_status"),
        p("order_status", "complaint"),  # ordinary, wrongly handed off
        p("request_human", "request_human"),
        p("out_of_scope", "out_of_scope"),
        p("out_of_scope", "nlu_fallback"),
        p("out_of_scope", "greet"),  # a confident wrong answer
    ]
    got = devctl.nlu_figures(predictions)
    assert got["examples"] == 8
    assert got["out_of_scope_caught"] == pytest.approx(2 / 3)
    assert got["in_scope_wrongly_rejected"] == pytest.approx(1 / 5)
    assert got["ordinary_wrongly_handed_off"] == pytest.approx(1 / 4)
    assert got["request_human_recognised"] == 1.0
    # greet: precision 1/2 (one OOS message taken for it), recall 1/2 -> F1 0.5
    assert got["per_intent_f1"]["greet"] == pytest.approx(0.5)
    text = devctl.quality_markdown(got, devctl.ROOT / "models" / "m.tar.gz", "2026-11-28")
    assert "| out of scope caught | 0.667 | >= 0.9 | no |" in text


def test_old_models_are_pruned_but_never_the_one_in_use(tmp_path: Path) -> None:
    import os

    paths = []
    for n in range(6):
        path = tmp_path / f"model{n}.tar.gz"
        path.write_bytes(b"x")
        os.utime(path, (1_000_000 + n, 1_000_000 + n))  # model5 is the newest
        paths.append(path)
    (tmp_path / "notes.txt").write_text("not a model")
    in_use = paths[0]  # the oldest, but the one the data hash names
    removed = devctl.prune_models(tmp_path, 3, keep=in_use)
    assert sorted(p.name for p in removed) == ["model1.tar.gz", "model2.tar.gz"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["model0.tar.gz", "model3.tar.gz", "model4.tar.gz", "model5.tar.gz", "notes.txt"]


def test_make_runs_endpoints_keep_trackers_in_sqlite_and_everything_else(tmp_path: Path) -> None:
    endpoints = devctl.endpoints_with_action_port(5999)
    changed = devctl.with_sql_trackers(endpoints + "lock_store:\n  type: in_memory\n", tmp_path)
    assert "GatewayInMemoryTrackerStore" not in changed
    assert "type: rasa_addons.gateway_channel.GatewaySQLTrackerStore" in changed
    assert f'db: "{tmp_path}"' in changed
    assert "lock_store:\n  type: in_memory\n" in changed, "the block after it is kept"
    assert 'url: "http://127.0.0.1:5999/webhook"' in changed
    assert "token: ${ACTION_SERVER_TOKEN}" in changed


def test_the_held_out_reports_overlap_counts_intent_examples_only(tmp_path: Path) -> None:
    nlu = tmp_path / "nlu.yml"
    nlu.write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - Hi\n    - hello there\n'
        "- lookup: product\n  examples: |\n    - Nova Phone\n"
        "- intent: inform\n  examples: |\n    - order [1001](order_number)\n"
    )
    assert devctl.intent_examples(nlu) == {"hi", "hello there", "order [1001](order_number)"}


def test_the_shipped_held_out_set_is_mostly_unseen() -> None:
    """At most the short greetings and thanks of the held-out set are also training examples."""
    training = devctl.intent_examples(devctl.ROOT / "data" / "nlu.yml")
    held_out = devctl.intent_examples(devctl.HELD_OUT)
    shared = training & held_out
    assert len(held_out) > 1000
    assert len(shared) / len(held_out) < 0.08, sorted(shared)
