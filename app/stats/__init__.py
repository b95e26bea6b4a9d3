"""Bureau statistics (SPEC §8): aggregate queries over roll-ups, small-cell suppression, exports."""
