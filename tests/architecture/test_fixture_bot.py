"""Which tests may depend on the shipped bot's training data.

The gateway's own behaviour (outages, recovery, ordering, crashes, Rasa's gateway channel) is
tested against the fixture bot in tests/fixture_bot, so a bot designer's change to data/ cannot
fail it. Only the tests of the shipped bot's behaviour (journeys on each channel, the browser
journeys, its REST answers) use ``rasa_stack`` / ``rasa_model``. A new test module that needs
the shipped bot is added to SHIPPED_BOT_TESTS on purpose, and says why in its docstring.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from scripts import devctl

TESTS = Path(__file__).resolve().parents[1]
SHIPPED = {"rasa_stack", "rasa_model"}

SHIPPED_BOT_TESTS = {
    "browser/test_customer_profile.py",  # the shipped stack's action server: the shop backend
    "browser/test_shop_identity.py",
    "browser/test_widget_and_console.py",
    "e2e/test_bot_rest.py",
    "e2e/test_hours.py",
    "e2e/test_journey.py",
    "e2e/test_rasa_locked_down.py",  # the shipped stack's ports and tokens, no NLU
    "e2e/test_slack_journey.py",
    "e2e/test_telegram_journey.py",
    "e2e/test_verification.py",
}
GATEWAY_MECHANICS = {
    "e2e/test_dashboard_journey.py",  # the dashboard's figures from real conversations
    "browser/test_files.py",  # a Rasa image response, drawn in the widget
    "e2e/test_rasa_gateway_channel.py",
    "e2e/test_recovery.py",
    "reliability/test_gateway_crash.py",
    "reliability/test_rasa_outage.py",
}


def fixtures_used(path: Path) -> set[str]:
    """The names of the parameters of every function in a test module (pytest fixtures), plus
    "module:<path>" for each test module it imports fixtures from."""
    tree = ast.parse(path.read_text())
    used = {
        arg.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for arg in node.args.args
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
            parts = (node.module or "").split(".")[1:]
            if parts[-1].startswith("test_"):
                used.add("module:" + "/".join(parts) + ".py")
    return used


def modules() -> dict[str, set[str]]:
    """Test module -> the fixtures it uses, those of the test modules it imports included."""
    found = {str(path.relative_to(TESTS)): fixtures_used(path) for path in TESTS.rglob("test_*.py")}
    for used in found.values():
        for name in [u for u in used if u.startswith("module:")]:
            used |= found.get(name.removeprefix("module:"), set())
    return found


def test_only_the_shipped_bots_own_tests_use_its_model() -> None:
    using = {name for name, used in modules().items() if used & SHIPPED}
    assert using <= SHIPPED_BOT_TESTS, sorted(using - SHIPPED_BOT_TESTS)
    assert SHIPPED_BOT_TESTS <= using, "stale entries: " + str(sorted(SHIPPED_BOT_TESTS - using))


def test_the_gateway_mechanics_run_on_the_fixture_bot() -> None:
    found = modules()
    for name in GATEWAY_MECHANICS:
        assert "fixture_stack" in found[name], name
        assert not found[name] & SHIPPED, name


def test_the_fixture_bots_model_does_not_depend_on_the_shipped_bots_files(
    tmp_path: Path,
) -> None:
    """Its content hash (which names its model) reads only tests/fixture_bot and the Rasa pin."""
    before = devctl.model_hash(devctl.FIXTURE_BOT)
    copy = tmp_path / devctl.FIXTURE_BOT.name
    for name in devctl.TRAINING_INPUTS:
        source = devctl.FIXTURE_BOT / name
        target = copy / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    assert devctl.model_hash(copy) == before, "same files, same hash, wherever they are"
    (copy / "data" / "nlu.yml").write_text(
        (copy / "data" / "nlu.yml").read_text() + "  - intent: goodbye\n    examples: |\n"
        "      - see you\n"
    )
    assert devctl.model_hash(copy) != before
