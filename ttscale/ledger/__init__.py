"""The DuckDB ledger: every generation call and every item decision of every run."""

from ttscale.ledger.ledger import Ledger

__all__ = ["Ledger"]
