"""orgs package."""
