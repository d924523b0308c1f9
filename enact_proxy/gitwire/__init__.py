"""git smart-HTTP push, judged: parse receive-pack, analyse the pack, answer report-status.

Parsing and analysis are I/O-free; ``mirror`` is the one module that talks to the upstream.
"""

from enact_proxy.gitwire.actions import actions_for_push, ref_actions_for_push
from enact_proxy.gitwire.errors import GitWireError
from enact_proxy.gitwire.packs import (
    CommitFiles,
    EmptySource,
    ObjectSource,
    PushAnalysis,
    RefAnalysis,
    analyse_push,
)
from enact_proxy.gitwire.receive_pack import (
    ZERO_ID,
    ReceivePackRequest,
    RefCommand,
    is_probe_request,
    parse_receive_pack,
)
from enact_proxy.gitwire.report import (
    RESULT_CONTENT_TYPE,
    client_reads_report,
    parse_report_status,
    refusal_body,
)

__all__ = [
    "RESULT_CONTENT_TYPE",
    "ZERO_ID",
    "CommitFiles",
    "EmptySource",
    "GitWireError",
    "ObjectSource",
    "PushAnalysis",
    "ReceivePackRequest",
    "RefAnalysis",
    "RefCommand",
    "actions_for_push",
    "analyse_push",
    "client_reads_report",
    "is_probe_request",
    "parse_receive_pack",
    "parse_report_status",
    "ref_actions_for_push",
    "refusal_body",
]
