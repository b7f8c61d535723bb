"""The one error type services raise for bad input or a refused action. Views and
consumers catch it (never a bare ValueError, so a real bug is not turned into a 400)."""


class ApplicationError(Exception):
    """Nothing was changed. `code` is machine-readable (it becomes the error frame's or
    JSON body's "error"), `message` is for people."""

    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
