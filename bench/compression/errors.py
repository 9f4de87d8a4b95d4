"""The one error a damaged or unusable bitstream raises, and how text a stream supplies is shown."""

import shlex

MAX_MESSAGE = 300  # characters: a message quotes values from the stream, which must not flood a terminal


def printable(text: str) -> str:
    """`text` with every character a terminal would act on rather than show (escape sequences, other control and
    format characters such as a right-to-left override, line and paragraph separators) written as its Python
    escape, e.g. \\x1b."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def quoted(text: str) -> str:
    """Stream-supplied text as one shell word, control characters escaped: `x.py; rm -rf ~` shows as
    'x.py; rm -rf ~', a name, not a command."""
    return shlex.quote(printable(text))


class BitstreamError(ValueError):
    """A stream cannot be decoded; the message is one line saying what is wrong with it, at most 300 characters,
    with no character that a terminal would act on."""

    def __init__(self, message: str):
        line = printable(" ".join(str(message).split()))
        super().__init__(line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…")
