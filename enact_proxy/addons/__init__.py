"""The mitmproxy addons: one small class per concern, passing results in ``flow.metadata``.

``Enact`` owns the parsed state (:class:`~enact_proxy.sidecar.Sidecar`) and carries the others as
sub-addons, in the order they must see a flow: egress (who may be reached), hygiene (a request every parser
reads alike), recognise (what the
request does), decide (allowlist and policies; forward or refuse), record (the outcome).

Metadata keys: ``enact.call`` (HttpCall), ``enact.wire``, ``enact.actions`` (list of
ActionRequest), ``enact.refusal`` (Refusal), ``enact.verdicts`` (list of Verdict),
``enact.tickets`` (opened receipts), ``enact.passthrough`` (bool).
"""

from enact_proxy.addons.decide import Decide
from enact_proxy.addons.egress import Egress
from enact_proxy.addons.enact import Enact
from enact_proxy.addons.hygiene import Hygiene
from enact_proxy.addons.recognise import Recognise
from enact_proxy.addons.record import Record

__all__ = ["Decide", "Egress", "Enact", "Hygiene", "Recognise", "Record"]
