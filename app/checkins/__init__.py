"""checkins package."""
