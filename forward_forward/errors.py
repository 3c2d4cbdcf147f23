"""The one exception type users see: a sentence on what is wrong and what to do."""


class FFError(Exception):
    """A problem the user can fix (bad config, missing data, diverging run).

    The CLI prints its message alone, without a traceback.
    """


def os_error_message(e: OSError) -> str:
    """One sentence for an operating-system error: what failed on which file, and what to do."""
    where = f" {e.filename}" if getattr(e, "filename", None) else ""
    why = e.strerror or str(e) or type(e).__name__
    hints = {28: "free some space and run the command again (a run continues with --resume)",
             13: "check the permissions of the folder, or choose another one",
             30: "the file system is read-only: choose another folder",
             21: "a folder stands where a file is expected: give a file",
             20: "a file stands where a folder is expected: give a folder",
             17: "something is already there: give another name",
             36: "the name is too long: use a shorter one",
             2: "check the path"}
    return f"{why}:{where}; {hints.get(e.errno or 0, 'check the path and the disk')}."


class Diverged(FFError):
    """A loss became NaN or infinite: a property of the configuration, not of the machine or the data."""


class Interrupted(FFError):
    """Ctrl-C honoured at a step boundary: a checkpoint is saved and the run can be resumed."""
