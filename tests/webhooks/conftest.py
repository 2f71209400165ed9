import pytest


@pytest.fixture
def control(standin):
    """The module's Graph API stand-in, reset for each test."""
    ctl = standin.control()
    ctl.reset()
    yield ctl
    ctl.close()
