"""The one error a damaged or unusable bitstream raises."""

MAX_MESSAGE = 300  # characters: a message quotes values from the stream, which must not flood a terminal


class BitstreamError(ValueError):
    """A stream cannot be decoded; the message is one line saying what is wrong with it, at most 300 characters."""

    def __init__(self, message: str):
        line = " ".join(str(message).split())
        super().__init__(line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…")
