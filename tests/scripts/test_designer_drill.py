"""The bot designer's drill: add an intent to a copy of the project (examples, a response, a
rule and a test story), then run the designer's target (`make test-bot`) and the gateway's
Rasa suites in that copy. Both pass, and no gateway test was touched.

Issue 15 saw a gateway test fail after exactly this change, because it depended on how the
shipped model read "and is 1008 on its way?". The gateway suites now talk to the fixture bot
(tests/fixture_bot); this runs them next to a changed data/ to show it.

It trains the copy's model (about 12 minutes) the first time its data is new; the model is
cached by content hash like every other, so later runs restore it. That training is why it is
not part of `make test` (a designer's data change would cost two trainings there): it runs as
`make test-drill`, which CI runs after `make test`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts import devctl
from tests.architecture.test_fixture_bot import GATEWAY_MECHANICS

pytestmark = [pytest.mark.e2e, pytest.mark.drill]

ROOT = devctl.ROOT
COPIED = [
    "actions",
    "bot",
    "connectors",
    "data",
    "docs",
    "handoff",
    "rasa_addons",
    "requirements",
    "scripts",
    "tests",
    "Makefile",
    "README.md",
    "config.yml",
    "credentials.yml",
    "domain.yml",
    "endpoints.yml",
    "gateway.yml",
    "pyproject.toml",
]
EXAMPLES = [
    "where is your shop in Berlin?",
    "do you have a store in Munich",
    "is there a Brightline shop near me",
    "where can I find your stores",
    "store locations",
    "which cities have a Brightline store",
    "can I visit a shop in Hamburg",
    "where is the nearest Brightline store",
    "do you have physical stores",
    "is there a shop I can walk into",
    "address of your store in Cologne",
    "where are your shops",
    "can I buy in a store instead of online",
    "Brightline store in Frankfurt?",
    "find a store",
]


def copy_of_the_project(target: Path) -> Path:
    """The files a designer edits and the tests that check them; the environments are links
    (same requirements, so nothing is installed again)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    for venv in (".venv", ".venv-rasa"):
        (target / venv).symlink_to(ROOT / venv)
    return target


def add_store_locations(project: Path) -> None:
    """What issue 15's designer did: a new intent with examples, a response, a rule, a story."""
    domain = project / "domain.yml"
    text = domain.read_text()
    text = text.replace("intents:\n", "intents:\n  - store_locations\n", 1)
    text = text.replace(
        "responses:\n",
        "responses:\n  utter_store_locations:\n"
        '    - text: "Brightline sells online only; there are no shops to visit."\n',
        1,
    )
    domain.write_text(text)
    examples = "".join(f"    - {example}\n" for example in EXAMPLES)
    with (project / "data" / "nlu.yml").open("a") as nlu:
        nlu.write(f"\n- intent: store_locations\n  examples: |\n{examples}")
    with (project / "data" / "rules.yml").open("a") as rules:
        rules.write(
            "\n  - rule: where the shops are\n    steps:\n      - intent: store_locations\n"
            "      - action: utter_store_locations\n"
        )
    with (project / "tests" / "stories" / "test_stories.yml").open("a") as stories:
        stories.write(
            "\n  - story: store locations\n    steps:\n      - user: |\n"
            "          hi, is there a Brightline store in Leipzig I could go to?\n"
            "        intent: store_locations\n      - action: utter_store_locations\n"
        )


def run(project: Path, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CSBOT_MODEL", "PYTEST_ADDOPTS"}}
    print(f"    drill: {' '.join(command)} (in the copy)", flush=True)
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.timeout(2400)  # the copy's training, the first time its data is new: ~12 minutes
def test_a_new_intent_passes_the_designer_target_and_the_gateway_suites(tmp_path: Path) -> None:
    project = copy_of_the_project(tmp_path / "project")
    add_store_locations(project)
    gateway_tests_before = {
        path.relative_to(ROOT / "tests"): path.read_bytes()
        for path in (ROOT / "tests").rglob("test_*.py")
    }

    designer = run(project, ["make", "test-bot"], timeout=1200)
    assert designer.returncode == 0, designer.stdout[-3000:] + designer.stderr[-3000:]
    assert "bot checks passed" in designer.stdout
    report = project / "var" / "test-results" / "nlu" / "intent_report.json"
    assert "store_locations" in report.read_text()
    digest = devctl.model_hash(project)
    assert digest != devctl.model_hash(), "the copy's model is a new one"
    assert (project / "models" / f"{digest}.tar.gz").exists(), "the designer target trained it"

    suites = [f"tests/{name}" for name in sorted(GATEWAY_MECHANICS)] + ["tests/architecture"]
    gateway = run(
        project,
        [
            str(project / ".venv" / "bin" / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *suites,
        ],
        timeout=1200,
    )
    assert gateway.returncode == 0, gateway.stdout[-3000:] + gateway.stderr[-3000:]
    assert " passed" in gateway.stdout and " failed" not in gateway.stdout
    assert " skipped" not in gateway.stdout

    # The change touched data/, domain.yml and a test story, and no gateway test.
    assert {
        path.relative_to(project / "tests"): path.read_bytes()
        for path in (project / "tests").rglob("test_*.py")
    } == gateway_tests_before
