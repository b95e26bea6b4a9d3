"""Audit trail of reads of children's personal data (SPEC §2)."""
