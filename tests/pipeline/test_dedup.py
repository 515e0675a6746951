"""Dedup decisions: first sight, repeats, resolution, re-firing and stale out-of-order copies."""

from alert_router.pipeline.dedup import KnownState, Observation, is_change, next_state

T0 = 1_800_000_000.0


def obs(status: str, starts: float, ends: float | None = None) -> Observation:
    return Observation("fp", status, starts, ends)


def test_first_sight_is_a_change() -> None:
    assert is_change(obs("firing", T0), None)
    assert is_change(obs("resolved", T0, T0 + 60), None)


def test_repeat_is_not_a_change() -> None:
    known = KnownState("firing", T0, None)
    assert not is_change(obs("firing", T0), known)
    # Alertmanager drops sub-second precision on re-posts: still the same episode.
    assert not is_change(obs("firing", T0 - 0.158), known)


def test_resolution_is_a_change_once() -> None:
    known = KnownState("firing", T0, None)
    resolved = obs("resolved", T0 - 0.1, T0 + 300)
    assert is_change(resolved, known)
    after = next_state(resolved, known, True)
    assert after.status == "resolved"
    assert not is_change(resolved, after)


def test_refire_with_new_start_is_a_change() -> None:
    known = KnownState("resolved", T0, T0 + 300)
    assert is_change(obs("firing", T0 + 600), known)


def test_stale_firing_after_resolution_is_ignored() -> None:
    # An HA peer that has not seen the resolution re-sends the old firing copy.
    known = KnownState("resolved", T0, T0 + 300)
    assert not is_change(obs("firing", T0), known)


def test_stale_resolution_of_earlier_episode_is_ignored() -> None:
    # Firing again since T0+600; a late resolution of the episode that ended at T0+300 arrives.
    known = KnownState("firing", T0 + 600, None)
    assert not is_change(obs("resolved", T0, T0 + 300), known)
    assert next_state(obs("resolved", T0, T0 + 300), known, False) == known
