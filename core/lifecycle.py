"""The campaign state machine and the pure transforms of campaign changes (no I/O).

The API and the scheduler decide with these functions; replaying `campaign-events` through
`apply_event` rebuilds the same campaigns.
"""

import uuid
from datetime import datetime

from schemas.campaigns import (
    Campaign,
    CampaignCreate,
    CampaignEvent,
    CampaignEventType,
    CampaignPatch,
    CampaignStatus,
)

S = CampaignStatus

TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    S.draft: frozenset({S.scheduled, S.cancelled}),
    S.scheduled: frozenset({S.live, S.cancelled}),
    S.live: frozenset({S.paused, S.completed, S.cancelled}),
    S.paused: frozenset({S.live, S.cancelled}),
    S.completed: frozenset(),
    S.cancelled: frozenset(),
}
"""Allowed next states. completed and cancelled are final."""


class InvalidTransition(Exception):
    def __init__(self, current: CampaignStatus, requested: CampaignStatus) -> None:
        self.current = current
        self.requested = requested
        self.allowed = sorted(TRANSITIONS[current])
        super().__init__(f"{current} -> {requested}")


class InvalidChange(Exception):
    """The change is well-formed but not acceptable (e.g. an end date before the start date)."""


def allowed_transitions(status: CampaignStatus) -> list[CampaignStatus]:
    return sorted(TRANSITIONS[status])


def _check_dates(campaign: Campaign) -> None:
    if campaign.start_date and campaign.end_date and campaign.end_date <= campaign.start_date:
        raise InvalidChange("endDate must be after startDate")


def new_event(
    kind: CampaignEventType, previous: Campaign | None, current: Campaign
) -> CampaignEvent:
    return CampaignEvent(
        event_id=f"evt_{uuid.uuid4().hex}",
        type=kind,
        campaign_id=current.id,
        org=current.org,
        version=current.version,
        occurred_at=current.updated_at,
        previous=previous,
        current=current,
    )


def create(org: str, campaign_id: str, body: CampaignCreate, now: datetime) -> CampaignEvent:
    """The `CampaignCreated` event of a new campaign (status draft, version 1)."""
    fields = body.model_dump(exclude={"id"})
    campaign = Campaign(
        id=campaign_id,
        org=org,
        status=S.draft,
        version=1,
        created_at=now,
        updated_at=now,
        **fields,
    )
    _check_dates(campaign)
    return new_event(CampaignEventType.created, None, campaign)


def change(current: Campaign, patch: CampaignPatch, now: datetime) -> CampaignEvent | None:
    """The event of applying `patch` to `current`, or None when it changes nothing.

    A status different from the current one must be an allowed transition (else
    `InvalidTransition`); a change of status is a `CampaignStatusChanged`, any other change a
    `CampaignUpdated`. Version checks are the caller's job.
    """
    updates = patch.model_dump(exclude_unset=True, exclude={"version"})
    requested = updates.pop("status", None)
    if requested is not None and requested != current.status:
        if requested not in TRANSITIONS[current.status]:
            raise InvalidTransition(current.status, requested)
        updates["status"] = requested
    changed = {k: v for k, v in updates.items() if getattr(current, k) != v}
    if not changed:
        return None
    if "status" not in changed and current.status in (S.completed, S.cancelled):
        raise InvalidChange(f"a {current.status} campaign cannot change")
    following = current.model_copy(
        update={**changed, "version": current.version + 1, "updated_at": now}
    )
    following = Campaign.model_validate(following.model_dump())
    _check_dates(following)
    kind = CampaignEventType.status_changed if "status" in changed else CampaignEventType.updated
    return new_event(kind, current, following)


def due_transition(campaign: Campaign, now: datetime) -> CampaignStatus | None:
    """The transition the clock asks for: scheduled → live at startDate, live → completed at
    endDate (a scheduled campaign whose dates both passed goes live first, then completes)."""
    if campaign.status == S.scheduled and campaign.start_date and campaign.start_date <= now:
        return S.live
    if campaign.status == S.live and campaign.end_date and campaign.end_date <= now:
        return S.completed
    return None


def apply_event(state: dict[tuple[str, str], Campaign], event: CampaignEvent) -> None:
    """Fold one event into `state` ((organisation, id) → campaign: two organisations' campaigns
    of one id are two campaigns); older or repeated versions are ignored, so replaying an
    at-least-once topic gives the same campaigns."""
    key = (event.org, event.campaign_id)
    known = state.get(key)
    if known is None or known.version < event.version:
        state[key] = event.current
