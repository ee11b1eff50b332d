"""What the whole NLU pipeline (the FallbackClassifier included) makes of every message of a
test set: ``python -m rasa_addons.nlu_predict MODEL TEST_SET.yml OUT.json`` in .venv-rasa.

``rasa test nlu`` undoes the FallbackClassifier's verdict before it scores, so its report says
which intent the classifier guessed, not whether the bot would have answered or fallen back.
The figures issue 14 sets targets for (out-of-scope caught, in-scope wrongly rejected) need
the latter; ``make nlu-report`` (scripts/devctl.py) reads this file for them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from rasa.core.agent import load_agent
from rasa.shared.nlu.training_data.loading import load_data


async def predict(model: str, test_set: str) -> list[dict[str, Any]]:
    agent = await load_agent(model_path=model)
    results = []
    for example in load_data(test_set).intent_examples:
        parsed = await agent.parse_message(example.get("text"))
        intent = parsed.get("intent") or {}
        ranking = [
            {"name": r.get("name"), "confidence": r.get("confidence")}
            for r in (parsed.get("intent_ranking") or [])[:3]
        ]
        results.append(
            {
                "text": example.get("text"),
                "intent": example.get("intent"),
                "prediction": intent.get("name"),
                "confidence": intent.get("confidence"),
                "ranking": ranking,
            }
        )
    return results


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    model, test_set, out = argv
    results = asyncio.run(predict(model, test_set))
    Path(out).write_text(json.dumps(results, indent=1))
    print(f"{len(results)} messages parsed into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
