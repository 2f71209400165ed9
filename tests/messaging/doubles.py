"""Test doubles shared by the messaging tests."""


class TaskRecorder:
    """Stands in for a Celery task: records what would have been queued, runs nothing."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.countdowns: list[float | None] = []

    def delay(self, *args):
        self.calls.append(args)
        self.countdowns.append(None)

    def apply_async(self, args=(), countdown=None, **options):
        self.calls.append(tuple(args))
        self.countdowns.append(countdown)

    @property
    def calls_with_countdown(self) -> list[tuple[tuple, float | None]]:
        return list(zip(self.calls, self.countdowns, strict=True))

    @property
    def ids(self) -> list:
        return [args[0] for args in self.calls]
