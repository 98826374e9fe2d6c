"""The gateway tests use the session-wide ``stack`` and ``gateway`` fixtures of tests/conftest.py."""
