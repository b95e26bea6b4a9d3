"""credits package."""
