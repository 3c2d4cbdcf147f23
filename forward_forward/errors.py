"""The one exception type users see: a sentence on what is wrong and what to do."""


class FFError(Exception):
    """A problem the user can fix (bad config, missing data, diverging run).

    The CLI prints its message alone, without a traceback.
    """
