"""`python -m ai_fixture_app`: run the fixture workflow once and print its result as JSON on stdout."""

import json
from dataclasses import asdict

from ai_fixture_app.workflow import run

print(json.dumps(asdict(run())))
