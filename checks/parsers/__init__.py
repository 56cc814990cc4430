"""Pure parsers: tool output text in, typed facts out. They never raise on garbage; they return what they found.

Each returns an empty or partial result for malformed or truncated input (tests/unit/test_parsers.py feeds every
recorded output cut in half, binary garbage and a 2 MB line to each, and checks the type it returns).
"""
