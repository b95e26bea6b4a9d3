"""The audit tests read the records of the school built for the transcript tests."""

from tests.transcripts.conftest import school  # noqa: F401  (the fixture)
