"""The polkit rule shipped for the helpdesk endpoint allows exactly the units its set allows.

systemd is not PID 1 on the test machine, so the rule cannot be exercised by polkitd here; what
can drift is its list against the endpoint's, and that is checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

from credo.endpoint.definition import load_definition

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "endpoints"


def test_the_polkit_rule_lists_the_units_the_endpoint_allows() -> None:
    rule = (EXAMPLES / "polkit" / "50-credo-endpoint-helpdesk.rules").read_text()
    units = json.loads(re.search(r"var units = (\[.*?\]);", rule).group(1))  # type: ignore[union-attr]
    definition = load_definition(EXAMPLES / "helpdesk.toml")
    [restart] = [c for cap in definition.capabilities for c in cap.commands if c.name == "restart-service"]
    assert restart.args[-1] == "restart" and 'action.lookup("verb") == "restart"' in rule
    assert 'subject.user != "' + definition.user + '"' in rule
    [allowed] = [k.values for p in restart.parameters for k in p.constraints]
    assert sorted(units) == sorted(allowed)
