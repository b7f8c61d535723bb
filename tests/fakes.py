"""Stand-ins for what the process hub (realtime.hub) delivers to, in hub unit tests."""


class FakeSocket:
    """A hub member that records the frames delivered to it."""

    is_signed_in = False
    session = None

    def __init__(self):
        self.frames = []

    async def deliver(self, message, frame):
        self.frames.append(frame)

    async def catch_up(self):
        pass
