"""Anti-rollback between the active bundle and a candidate, and freshness (DESIGN §6, §7.3)."""

from __future__ import annotations

import pytest
from bundle_kit import CREATED_AT, DATA, bundle_files, json_bytes

from pdp.bundle import BundleContents, RollbackError, check_candidate, freshness, parse_contents
from pdp.bundle.manifest import timestamp


def _contents(sequence: int, *, data: object = None) -> BundleContents:
    files = bundle_files(sequence)
    if data is not None:
        files["data.json"] = json_bytes(data)
    return parse_contents(files)


def test_with_nothing_active_any_candidate_activates() -> None:
    """A first bundle is always accepted."""
    assert check_candidate(None, _contents(3)) == "activate"


def test_a_higher_sequence_activates() -> None:
    """A candidate with a higher sequence replaces the active bundle."""
    assert check_candidate(_contents(3), _contents(4)) == "activate"


def test_the_same_content_is_unchanged() -> None:
    """The same content hash means there is nothing to activate."""
    assert check_candidate(_contents(3), _contents(3)) == "unchanged"


def test_a_lower_sequence_is_refused() -> None:
    """A lower sequence is a rollback and is refused."""
    with pytest.raises(RollbackError) as caught:
        check_candidate(_contents(3), _contents(2))
    assert caught.value.reason == "sequence_rollback"
    assert "2" in str(caught.value) and "3" in str(caught.value)


def test_an_equal_sequence_with_other_content_is_refused() -> None:
    """The same sequence with different content is a conflict and is refused."""
    with pytest.raises(RollbackError) as caught:
        check_candidate(_contents(3), _contents(3, data={**DATA, "approvals": {}}))
    assert caught.value.reason == "sequence_conflict"


def test_allow_downgrade_accepts_a_lower_sequence() -> None:
    """With allow_downgrade an operator can go back to an older sequence."""
    assert check_candidate(_contents(3), _contents(2), allow_downgrade=True) == "activate"


def test_a_bundle_is_fresh_within_max_age() -> None:
    """A bundle confirmed less than max_age ago is fresh."""
    manifest = _contents(1).manifest
    assert freshness(manifest, activated_at=100.0, now=150.0, max_age=60.0) == "fresh"


def test_a_bundle_not_confirmed_for_max_age_is_stale() -> None:
    """A bundle confirmed longer than max_age ago is stale."""
    manifest = _contents(1).manifest
    assert freshness(manifest, activated_at=100.0, now=161.0, max_age=60.0) == "stale"


def test_without_max_age_a_bundle_never_goes_stale_by_age() -> None:
    """max_age None: age alone never makes a bundle stale."""
    manifest = _contents(1).manifest
    assert freshness(manifest, activated_at=0.0, now=1e9, max_age=None) == "fresh"


def test_a_bundle_past_expires_at_is_stale() -> None:
    """Past its expires_at a bundle is stale whatever its age."""
    manifest = _contents(1).manifest.model_copy(update={"expires_at": timestamp(CREATED_AT + 10)})
    now = CREATED_AT + 10.0
    assert freshness(manifest, activated_at=now, now=now, max_age=None) == "stale"
