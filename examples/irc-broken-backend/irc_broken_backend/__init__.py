"""A plugin whose import fails, so tests can check that irc reports it by
name with this error and that every other backend keeps working."""

raise ImportError("irc_broken_backend needs the 'frobnicator' library, which is not installed")
