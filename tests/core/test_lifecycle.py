"""The campaign state machine and change transforms, without Kafka or a store."""

from datetime import UTC, datetime, timedelta

import pytest

from core import lifecycle
from schemas.campaigns import CampaignCreate, CampaignPatch, CampaignStatus

S = CampaignStatus
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def make(**fields: object) -> lifecycle.Campaign:
    event = lifecycle.create("acme", "cmp_1", CampaignCreate(name="c"), NOW)
    return event.current.model_copy(update=fields)


def test_only_the_documented_transitions_are_allowed() -> None:
    assert {s: sorted(t) for s, t in lifecycle.TRANSITIONS.items()} == {
        S.draft: [S.cancelled, S.scheduled],
        S.scheduled: [S.cancelled, S.live],
        S.live: [S.cancelled, S.completed, S.paused],
        S.paused: [S.cancelled, S.live],
        S.completed: [],
        S.cancelled: [],
    }


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_change_of_status(current: CampaignStatus, target: CampaignStatus) -> None:
    campaign = make(status=current)
    if target == current:
        assert lifecycle.change(campaign, CampaignPatch(status=target), NOW) is None
    elif target in lifecycle.TRANSITIONS[current]:
        event = lifecycle.change(campaign, CampaignPatch(status=target), NOW)
        assert event is not None
        assert event.type == lifecycle.CampaignEventType.status_changed
        assert (event.previous, event.current.status, event.version) == (campaign, target, 2)
    else:
        with pytest.raises(lifecycle.InvalidTransition) as info:
            lifecycle.change(campaign, CampaignPatch(status=target), NOW)
        assert info.value.allowed == sorted(lifecycle.TRANSITIONS[current])


def test_field_change_is_an_update_and_dates_are_checked() -> None:
    campaign = make(start_date=NOW)
    event = lifecycle.change(campaign, CampaignPatch(name="renamed"), NOW)
    assert event is not None
    assert event.type == lifecycle.CampaignEventType.updated
    with pytest.raises(lifecycle.InvalidChange):
        lifecycle.change(campaign, CampaignPatch(end_date=NOW - timedelta(days=1)), NOW)


def test_due_transitions_follow_the_dates() -> None:
    later = NOW + timedelta(hours=1)
    assert lifecycle.due_transition(make(status=S.scheduled, start_date=later), NOW) is None
    assert lifecycle.due_transition(make(status=S.scheduled, start_date=NOW), NOW) == S.live
    assert lifecycle.due_transition(make(status=S.live, end_date=NOW), NOW) == S.completed
    assert lifecycle.due_transition(make(status=S.paused, end_date=NOW), NOW) is None
    assert lifecycle.due_transition(make(status=S.draft, start_date=NOW), NOW) is None


def test_apply_event_ignores_old_and_repeated_versions() -> None:
    created = lifecycle.create("acme", "cmp_1", CampaignCreate(name="c"), NOW)
    renamed = lifecycle.change(created.current, CampaignPatch(name="d"), NOW)
    assert renamed is not None
    state: dict[tuple[str, str], lifecycle.Campaign] = {}
    for event in (created, renamed, created, renamed):
        lifecycle.apply_event(state, event)
    assert state == {("acme", "cmp_1"): renamed.current}


def test_apply_event_keeps_two_organisations_campaigns_of_one_id_apart() -> None:
    mine = lifecycle.create("acme", "cmp_1", CampaignCreate(name="a"), NOW)
    renamed = lifecycle.change(mine.current, CampaignPatch(name="a2"), NOW)
    assert renamed is not None
    theirs = lifecycle.create("globex", "cmp_1", CampaignCreate(name="b"), NOW)
    state: dict[tuple[str, str], lifecycle.Campaign] = {}
    for event in (mine, renamed, theirs):
        lifecycle.apply_event(state, event)
    assert state == {("acme", "cmp_1"): renamed.current, ("globex", "cmp_1"): theirs.current}
