"""The domain objects every front door (library, HTTP proxy, git, Postgres) shares."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter

RECEIPT_VERSION = 2


class Decision(StrEnum):
    PASS = "PASS"
    BLOCK = "BLOCK"


class RequestSummary(BaseModel):
    """Where an action came from on the wire. Never carries credentials."""

    model_config = ConfigDict(frozen=True)

    method: str | None = None
    host: str | None = None
    path: str | None = None


class ActionRequest(BaseModel):
    """One recognised action: what a connector's recogniser produces and the engine judges.

    ``action`` is the short name (``create_contact``); ``full_name`` is ``hubspot.create_contact``.
    ``payload`` holds the canonical keys of SPEC §4, identical whichever front door produced it.
    """

    system: str
    action: str
    payload: dict[str, Any] = Field(default_factory=dict)
    request: RequestSummary | None = None

    @property
    def full_name(self) -> str:
        return f"{self.system}.{self.action}"


class WorkflowContext(BaseModel):
    """What a policy (and a library-mode workflow) sees.

    ``system``/``action`` are None for a library-mode workflow run, whose policies judge the
    workflow's payload as a whole.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    workflow: str | None
    actor_email: str
    actor_roles: tuple[str, ...] = ()
    system: str | None = None
    action: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    systems: Mapping[str, Any] = Field(default_factory=dict)
    now: datetime
    state: Any = None  # the StateStore claims go to (policies call ``claim``, not the store)
    # (policy name, claim) pairs stated while judging; the engine claims them all at once
    _claims: list[tuple[str, Any]] = PrivateAttr(default_factory=list)
    _policy: str = PrivateAttr(default="")

    def claim(self, claim: Any) -> None:
        """State that this action takes ``claim`` (an ``enact_proxy.state.Limit`` or ``Unique``).

        Nothing is checked yet: once every policy of every action in the request has passed, the
        engine claims them all in one atomic step, and a claim that does not fit fails the policy
        that stated it, with the claim's message.
        """
        self._claims.append((self._policy, claim))

    @property
    def full_action(self) -> str | None:
        if self.system is None or self.action is None:
            return None
        return f"{self.system}.{self.action}"

    @property
    def is_contractor(self) -> bool:
        return "contractor" in self.actor_roles


class PolicyResult(BaseModel):
    policy: str
    passed: bool
    reason: str


class ActionResult(BaseModel):
    action: str
    system: str | None = None
    success: bool | None
    output: dict[str, Any] = Field(default_factory=dict)


class RunResult(BaseModel):
    workflow: str | None
    decision: Decision
    reason: str
    policy_results: list[PolicyResult] = Field(default_factory=list)
    actions_taken: list[ActionResult] = Field(default_factory=list)
    run_id: str

    @property
    def passed(self) -> bool:
        return self.decision is Decision.PASS


class Signature(BaseModel):
    alg: Literal["HMAC-SHA256"] = "HMAC-SHA256"
    key_id: str
    value: str


class Approval(BaseModel):
    """The person's approval that let an action through (SPEC §8)."""

    id: str
    approved_by: str


# Fields the log adds to a record when it is written: its place and its signature (SPEC §6).
LOG_FIELDS = frozenset({"kind", "seq", "prev_hash", "signature"})


class RecordBase(BaseModel):
    """What an intent and a receipt share (SPEC §6): the decision, before and after it ran."""

    receipt_version: int = RECEIPT_VERSION
    run_id: str
    timestamp: str
    actor_email: str
    workflow: str | None
    system: str | None
    action: str | None
    payload: dict[str, Any]
    request: RequestSummary | None
    policy_results: list[PolicyResult]
    decision: Decision
    reason: str
    mode: Literal["enforce", "shadow"]
    redacted: list[str]
    config_sha256: str | None
    approval: Approval | None = None
    # set once the record is in the log
    seq: int | None = None
    prev_hash: str | None = None
    signature: Signature | None = None

    def body(self) -> dict[str, Any]:
        """The record as the log writer takes it: every field but the log's own (JSON types)."""
        data = self.model_dump(mode="json", exclude=LOG_FIELDS)  # type: ignore[arg-type]
        if data.get("approval") is None:
            data.pop("approval", None)  # present only when an approval let the action through
        return data

    def unsigned_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"signature"})
        if data.get("approval") is None:
            data.pop("approval", None)
        return data

    def record_dict(self) -> dict[str, Any]:
        """The whole record as it stands in the log (its canonical bytes are those of this)."""
        data = self.unsigned_dict()
        if self.signature is not None:
            data["signature"] = self.signature.model_dump(mode="json")
        return data


class Intent(RecordBase):
    """Written and made durable before an action is forwarded; one receipt follows it later."""

    kind: Literal["intent"] = "intent"


class Receipt(RecordBase):
    """Exactly one per decision (SPEC §6)."""

    kind: Literal["receipt"] = "receipt"
    actions_taken: list[ActionResult] = Field(default_factory=list)

    def intent_body(self) -> dict[str, Any]:
        data = self.body()
        data.pop("actions_taken", None)
        return data


LogRecord = Annotated[Intent | Receipt, Field(discriminator="kind")]
_RECORD: TypeAdapter[Intent | Receipt] = TypeAdapter(LogRecord)


def parse_record(data: Any) -> Intent | Receipt:
    """A record read from the log, typed by its ``kind`` (pydantic ValidationError when malformed)."""
    return _RECORD.validate_python(data)
