"""Which errors a user can cause and fix, and how a failure reads: one rule for the command line's exit status
and for the status column of counts.csv / summary.csv. Imports nothing, so every layer may use it."""

# A bad option or value, a missing, unreadable or malformed file: their messages name what is wrong.
# Anything else is a fault of the program.
USER_ERRORS = (ValueError, KeyError, OSError)


def error_message(error: BaseException) -> str:
    """The message of a user error (a ``KeyError``'s own text, not its quoted repr); else the type and message,
    since a program fault's message alone (a codec's code, a missing key) may not say what went wrong."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, USER_ERRORS):
        return str(error)
    return f"{type(error).__name__}: {error}"
