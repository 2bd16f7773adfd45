"""Argument types and the help formatter shared by the ``rankref`` sub-commands."""
import argparse
import textwrap


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: ...)' after each option's help, except for flags and options whose help
    already says what happens without them."""

    def _split_lines(self, text, width):
        return textwrap.wrap(text, width, break_on_hyphens=False)  # keep file names whole

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def _at_least(kind, low):
    """An argparse type: a number of ``kind`` (int or float) that is at least ``low``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value >= low:  # NaN fails too
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value

    parse.__name__ = f"{kind.__name__} >= {low}"
    return parse
