"""Why a brief could not be produced. The API maps each to problem details (status below)."""


class BriefError(Exception):
    status = 502
    outcome = "upstream"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UpstreamUnavailable(BriefError):
    """The model provider failed (after retries) or refused our request (4xx)."""


class UpstreamTimeout(BriefError):
    status = 504


class DeadlineExceeded(BriefError):
    """The model turns and tool calls together outlasted FK_BRIEF_DEADLINE_SECONDS."""

    status, outcome = 504, "deadline"


class InvalidModelOutput(BriefError):
    """Truncated output, JSON that is not a brief after the repair round, or the loop's caps."""

    outcome = "invalid"


class Refused(BriefError):
    """The model declined to write the brief."""

    status, outcome = 422, "refused"


class Ungrounded(BriefError):
    """The brief still held facts absent from the tool results after the repair round."""

    status, outcome = 422, "ungrounded"

    def __init__(self, detail: str, problems: list[str]) -> None:
        super().__init__(detail)
        self.problems = problems
