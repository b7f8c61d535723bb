"""A real SMTP server for the tests, as its own process: `python tests/smtp_sink.py PORT DIR`.
Every message it accepts is written to DIR as <n>.eml (recipients in <n>.rcpt), then it
prints nothing more; it says "ready" on stdout once it listens."""

import asyncio
import itertools
import sys
from pathlib import Path

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.numbers)
        (self.folder / f"{n}.rcpt").write_text("\n".join(envelope.rcpt_tos))
        # Written under a temporary name, then renamed: a reader never sees half a message.
        tmp = self.folder / f"{n}.tmp"
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.folder / f"{n}.eml")
        return "250 Message accepted for delivery"


def main() -> None:
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(Sink(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
