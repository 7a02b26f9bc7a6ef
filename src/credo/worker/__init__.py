"""``credo worker``: pull jobs from ``credo server`` over HTTP(S) and run them as the group's gMSA."""
