"""The console's tests reuse the processing fixtures (an account, Meta answering, processing)."""

from tests.triggers.conftest import PERSON, account, graph, process  # noqa: F401
