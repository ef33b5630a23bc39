"""jobrelay-mock: an in-memory executor on simulated time, for tests and demos."""

from jobrelay_mock._executor import MockEvent, MockExecutor, MockOutcome, outcome_from_labels

__all__ = ["MockEvent", "MockExecutor", "MockOutcome", "outcome_from_labels"]
