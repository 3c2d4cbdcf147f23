"""The one exception type users see: a sentence on what is wrong and what to do."""


class FFError(Exception):
    """A problem the user can fix (bad config, missing data, diverging run).

    The CLI prints its message alone, without a traceback.
    """


class Diverged(FFError):
    """A loss became NaN or infinite: a property of the configuration, not of the machine or the data."""


class Interrupted(FFError):
    """Ctrl-C honoured at a step boundary: a checkpoint is saved and the run can be resumed."""
