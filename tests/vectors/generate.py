"""Regenerate the thin-client test vectors: ``python tests/vectors/generate.py`` (from the repo).

Every scenario (scripted in ``edit_scenarios.py`` and ``rejoin_scenarios.py``, random in
``fuzz.py``) runs against a real ``Room`` (``vectors.Scenario``) and is written to
``thin/<name>.json``. ``tests/client/test_thin_vectors.py`` checks that regenerating gives the
committed files, and runs each file against the Python SDK; ``web/test/thin_vectors.test.js``
runs them against the JavaScript client.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # room_link.py, vectors.py

import edit_scenarios  # noqa: F401 (importing it registers its scenarios)
import rejoin_scenarios  # noqa: F401 (importing it registers its scenarios)
from fuzz import FUZZ, fuzz

from vectors import SCENARIOS, Json

OUT = Path(__file__).resolve().parent / "thin"


def render(vector: Json) -> str:
    return json.dumps(vector, ensure_ascii=False, indent=1) + "\n"


def generate() -> dict[str, str]:
    """File name -> contents, for every scenario."""
    out: dict[str, str] = {}
    for build in [*SCENARIOS, *(fuzz(seed, steps, found) for seed, steps, found in FUZZ)]:
        vector = build().finish()
        out[f"{vector['name']}.json"] = render(vector)
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    files = generate()
    for old in OUT.glob("*.json"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"{len(files)} vectors in {OUT}")


if __name__ == "__main__":
    main()
