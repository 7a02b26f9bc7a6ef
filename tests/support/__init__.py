"""Helpers shared by the test suite: act as a lab identity, run commands, parse LDIF."""
