"""Example participant: payments (accounts, charges, refunds, an auditable movement ledger)."""
