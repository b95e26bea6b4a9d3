"""Review queue, competition claims, appeals and term close (SPEC §7)."""
