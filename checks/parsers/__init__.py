"""Pure parsers: tool output text in, typed facts out. They never raise on garbage; they return what they found.

Each returns an empty or partial result for malformed or truncated input; `ParseError` is raised only where a caller
must tell "the tool said nothing usable" from "the tool reported zero devices".
"""


class ParseError(ValueError):
    """The text is not the output the parser expects."""
