"""Whether one receipt is in the log's newest signed checkpoint, for the admin API's one-receipt view.

``python -m enact_proxy.admin.inclusion DIR RUN_ID [VERIFIER]`` prints the answer as JSON. The admin API
runs it in a child process: proving extends a reader's index of the log (``<dir>/.index``), which after
many new records is seconds of Python, and in the sidecar's own process that would hold the GIL the
proxy needs. ``VERIFIER`` is the log's public key in signed-note form (``certs/receipt-log.pub``).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def check(directory: str, run_id: str, verifier_text: str | None) -> dict[str, Any]:
    """``inclusion``: True (the RFC 6962 proof reaches HEAD's root and HEAD's signature holds), False
    with ``inclusion_problem``, or a sentence when it cannot be told yet; ``checkpoint`` says where."""
    try:
        from enact_proxy.receipts.note import Verifier
        from enact_proxy.receipts.prove import ProveError, prove
    except ImportError:  # a log without signed checkpoints: the signature is all there is to check
        return {}
    try:
        verifier = Verifier.parse(verifier_text) if verifier_text else None
        proof = prove(directory, run_id, verifier)
    except ProveError as exc:
        if "newer than HEAD" in str(exc):
            return {"inclusion": "not yet: the next checkpoint covers it (within receipts.checkpoint_seconds)"}
        return {"inclusion": False, "inclusion_problem": str(exc)}
    except OSError as exc:
        return {"inclusion": False, "inclusion_problem": f"cannot read the log: {exc.strerror or exc}"}
    except ValueError as exc:  # the verifier key text does not parse
        return {"inclusion": f"not checked: {exc}"}
    return {"inclusion": True,
            "checkpoint": f"leaf {proof.leaf_index} of tree size {proof.tree_size}, "
                          f"signed by {proof.checkpoint.splitlines()[0]}"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m enact_proxy.admin.inclusion DIR RUN_ID [VERIFIER]", file=sys.stderr)
        return 2
    print(json.dumps(check(args[0], args[1], args[2] if len(args) == 3 else None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
