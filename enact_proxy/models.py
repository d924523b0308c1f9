"""The domain objects every front door (library, HTTP proxy, git, Postgres) shares."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter

RECEIPT_VERSION = 2
_set_attr = object.__setattr__
M = TypeVar("M", bound=BaseModel)


def built(cls: type[M], fields: dict[str, Any], private: dict[str, Any] | None = None) -> M:
    """An instance of ``cls`` holding ``fields`` as given: every field, already of its type.

    The engine's hot path makes several models per decision out of values it typed itself; pydantic's
    ``model_construct`` (pure Python in 2.13, ~2 µs) walks every field for defaults and aliases, this
    does what it ends with. Callers pass every field (tests/test_models.py holds the result equal to
    the validated model)."""
    obj = cls.__new__(cls)
    _set_attr(obj, "__dict__", fields)
    _set_attr(obj, "__pydantic_fields_set__", set(fields))
    _set_attr(obj, "__pydantic_extra__", None)
    _set_attr(obj, "__pydantic_private__", private)
    return obj


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


class ClaimSink:
    """Where ``ctx.claim`` puts claims while ``policy.evaluate()`` runs policies: (policy name, claim)."""

    __slots__ = ("policy", "claims")

    def __init__(self) -> None:
        self.policy = ""  # the policy running now (evaluate sets it before each one)
        self.claims: list[tuple[str, Any]] = []


CLAIMS: ContextVar[ClaimSink | None] = ContextVar("enact_claims", default=None)


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
    # Claims stated outside policy.evaluate() (a policy called on its own). Inside it, claims go to the
    # collector below: touching pydantic private attributes on every policy call costs more than the policy.
    _claims: list[tuple[str, Any]] | None = PrivateAttr(default=None)

    def claim(self, claim: Any) -> None:
        """State that this action takes ``claim`` (an ``enact_proxy.state.Limit``, ``Unique`` or ``UseGrant``).

        Nothing is checked yet: once every policy of every action in the request has passed, the
        engine claims them all in one atomic step, and a claim that does not fit fails the policy
        that stated it, with the claim's message.
        """
        collecting = CLAIMS.get()
        if collecting is not None:
            collecting.claims.append((collecting.policy, claim))
            return
        if self._claims is None:
            self._claims = []
        self._claims.append(("", claim))

    @property
    def full_action(self) -> str | None:
        if self.system is None or self.action is None:
            return None
        return f"{self.system}.{self.action}"

    @property
    def is_contractor(self) -> bool:
        return "contractor" in self.actor_roles


class PolicyResult(BaseModel):
    """One policy's verdict on one action. Frozen: results with the same text are shared between
    decisions (``enact_proxy.policy.passed``/``failed``), and a receipt must show what was decided."""

    model_config = ConfigDict(frozen=True)

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
        """The record as the log writer takes it: every field but the log's own (JSON types).

        Written out by hand: this runs for every record on the sidecar's event loop, where a generic
        ``model_dump`` costs several times as much. tests/test_receipts_records.py holds it equal to ``model_dump``."""
        request = self.request
        data: dict[str, Any] = {
            "receipt_version": self.receipt_version, "run_id": self.run_id, "timestamp": self.timestamp,
            "actor_email": self.actor_email, "workflow": self.workflow, "system": self.system,
            "action": self.action, "payload": self.payload,
            "request": None if request is None else {"method": request.method, "host": request.host,
                                                     "path": request.path},
            "policy_results": [{"policy": r.policy, "passed": r.passed, "reason": r.reason}
                               for r in self.policy_results],
            "decision": self.decision.value if isinstance(self.decision, Decision) else self.decision,
            "reason": self.reason, "mode": self.mode, "redacted": list(self.redacted),
            "config_sha256": self.config_sha256,
        }
        if self.approval is not None:  # present only when an approval let the action through
            data["approval"] = {"id": self.approval.id, "approved_by": self.approval.approved_by}
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

    def body(self) -> dict[str, Any]:
        data = super().body()
        data["actions_taken"] = [{"action": a.action, "system": a.system, "success": a.success, "output": a.output}
                                 for a in self.actions_taken]
        return data

    def intent_body(self) -> dict[str, Any]:
        return super().body()


LogRecord = Annotated[Intent | Receipt, Field(discriminator="kind")]
_RECORD: TypeAdapter[Intent | Receipt] = TypeAdapter(LogRecord)


def parse_record(data: Any) -> Intent | Receipt:
    """A record read from the log, typed by its ``kind`` (pydantic ValidationError when malformed)."""
    return _RECORD.validate_python(data)
