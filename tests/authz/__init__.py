"""The authorization matrix: every OpenAPI operation × every role × objects in and out of scope."""
