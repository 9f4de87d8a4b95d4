"""The one error a damaged or unusable bitstream raises."""


class BitstreamError(ValueError):
    """A stream cannot be decoded; the message is one line saying what is wrong with it."""
