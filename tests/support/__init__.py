"""Helpers shared by the tests that are not fixtures: independent oracles, the strict-mode
rules for the tools CI promises."""
