"""Test doubles shared by the messaging tests."""


class TaskRecorder:
    """Stands in for a Celery task: records what would have been queued, runs nothing."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.countdowns: list[float | None] = []
        self.kwargs: list[dict] = []

    def delay(self, *args, **kwargs):
        self.calls.append(args)
        self.countdowns.append(None)
        self.kwargs.append(kwargs)

    def apply_async(self, args=(), kwargs=None, countdown=None, **options):
        self.calls.append(tuple(args))
        self.countdowns.append(countdown)
        self.kwargs.append(kwargs or {})

    @property
    def calls_with_countdown(self) -> list[tuple[tuple, float | None]]:
        return list(zip(self.calls, self.countdowns, strict=True))

    @property
    def ids(self) -> list:
        return [args[0] for args in self.calls]
