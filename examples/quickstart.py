"""The seed's quickstart, for real: library mode against a local sandbox HubSpot (no account needed).

    python examples/quickstart.py
    enact-proxy receipts verify --dir receipts
"""

from __future__ import annotations

from connectors.hubspot import HubSpotConnector
from enact_proxy import EnactClient
from enact_proxy.sandbox import SandboxHubSpot
from policies.crm import no_duplicate_contacts
from workflows.new_lead import new_lead_workflow


def main() -> None:
    with SandboxHubSpot(token="sandbox-token") as sandbox:
        enact = EnactClient(systems={"hubspot": HubSpotConnector(api_key="sandbox-token", base_url=sandbox.url)},
                            policies=[no_duplicate_contacts], workflows=[new_lead_workflow],
                            receipts_dir="receipts", certs_dir="certs")
        with enact:
            for attempt in ("first", "again"):
                result, receipt = enact.run(workflow="new_lead_workflow", actor_email="agent@company.com",
                                            payload={"email": "jane@acme.com", "company": "Acme Inc"})
                print(f"{attempt}: {result.decision.value} - {result.reason}")
                for step in result.actions_taken:
                    print(f"    {step.system}.{step.action}: {'ok' if step.success else 'failed'} {step.output}")
                print(f"    receipt {receipt.run_id} (signature {receipt.signature.value[:16]}...)"
                      if receipt.signature else "")
        print(f"receipts in {enact.receipts_dir.resolve()}; check them with:")
        print(f"    enact-proxy receipts verify --dir {enact.receipts_dir}")


if __name__ == "__main__":
    main()
