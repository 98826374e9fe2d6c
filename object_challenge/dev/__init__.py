"""Development tooling: the local stack supervisor (`make run`), the store stand-ins.

Production code never imports it (the import-linter contract says so)."""
