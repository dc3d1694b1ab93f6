"""Pure fleet logic that runs inside workflows: node names, the disruption budget, rollout plans,
maintenance windows. No I/O, no clock, no randomness but the values passed in (callers pass
`workflow.now()` and `workflow.random()`); table-tested in tests/unit/. Changing what these
functions return changes what running workflows decide: that needs `workflow.patched`."""
