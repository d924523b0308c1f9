"""Signed, hash-chained receipts (SPEC §6)."""

from enact_proxy.receipts.signing import ReceiptKey, canonical_bytes, receipt_hash
from enact_proxy.receipts.store import ReceiptError, ReceiptStore, StoreFront, Ticket

__all__ = ["ReceiptError", "ReceiptKey", "ReceiptStore", "StoreFront", "Ticket", "canonical_bytes", "receipt_hash"]
