"""Errors that travel back to a client as a RESP error line."""


class CommandError(Exception):
    """A refusal the client should see: ``-<code> <message>``.

    Plain errors use the code ``ERR``; coded ones (``NOTUNIQUE``...) are what
    Faktory calls "known" errors, sent without the ``ERR`` prefix.
    """

    def __init__(self, message: str, code: str = "ERR") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        if self.code == "ERR":
            return self.message
        return f"{self.code} {self.message}"


class StorageUnavailable(CommandError):
    """Redis is down or unreachable: the command was not carried out."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Redis is unavailable: {detail}")


class RedisRefused(CommandError):
    """Redis refused a write because it is out of memory (``kind`` "memory")
    or cannot write to disk ("disk"): the command was not carried out, and
    the message says why (see ``faktory.pressure``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Halt(CommandError):
    """Raised by middleware to refuse an operation with a coded error."""


class Discard(Exception):
    """Raised by FETCH middleware: drop this job and fetch another."""


def gather(deferreds):
    """``defer.gatherResults`` whose failure is the first failure itself, not
    a ``FirstError`` wrapping it (so a ``StorageUnavailable`` stays one and
    reaches the client as ``-ERR Redis is unavailable``), and whose other
    failures are consumed instead of logged as unhandled."""
    from twisted.internet import defer

    d = defer.gatherResults(list(deferreds), consumeErrors=True)
    return d.addErrback(lambda f: f.value.subFailure if f.check(defer.FirstError) else f)
