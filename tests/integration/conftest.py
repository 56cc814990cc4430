"""Integration fixtures live in tests/integration/fixtures.py, registered once for the whole session by the root
conftest (tests/browser shares them: importing fixtures into two conftests would start two workers and two Redis)."""
