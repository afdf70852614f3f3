"""`python -m fixture_app`: run the fixture workflow once and print its result as JSON on stdout."""

import json
from dataclasses import asdict

from fixture_app.workflow import run

print(json.dumps(asdict(run())))
