"""Receipts: one append-only, signed, Merkle-checkpointed log per folder (SPEC §6)."""

from enact_proxy.receipts.signing import ReceiptKey, canonical_bytes, receipt_hash
from enact_proxy.receipts.store import ReceiptError, ReceiptStore, StoreFront, Ticket, WriterBusy

__all__ = ["ReceiptError", "ReceiptKey", "ReceiptStore", "StoreFront", "Ticket", "WriterBusy", "canonical_bytes",
           "receipt_hash"]
