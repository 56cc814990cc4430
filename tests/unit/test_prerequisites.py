"""A missing prerequisite (root, netns, a tool, Chromium) skips a test on a developer's machine and fails it in CI."""

import pytest

from tests.conftest import missing_prerequisite


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_missing_prerequisite_fails_in_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI must run this test, but chromium is not installed"):
        missing_prerequisite("chromium is not installed")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_prerequisite_skips_outside_ci(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        missing_prerequisite("chromium is not installed")
