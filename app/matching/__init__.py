"""Matching pupils with science resources: public directory, recommendations, bookings, talent (SPEC §12)."""
