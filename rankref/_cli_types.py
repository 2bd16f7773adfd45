"""Argument types and the help formatter shared by the ``rankref`` sub-commands.

Every numeric option of the command line is parsed by :func:`_at_least` or :func:`_more_than`:
a bad value (``inf``, ``nan``, out of range, not a number) is a usage error of one line that
names the option, e.g. ``rankref bench: error: argument --delta: must be a finite number >= 0,
got 'inf'`` (exit status 2), never a traceback from the work that follows.
"""
import argparse
import math
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


def _number(kind, text):
    """``text`` as a finite int or float (``argparse.ArgumentTypeError`` otherwise)."""
    what = "an integer" if kind is int else "a finite number"
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is not int and not math.isfinite(value):  # inf, nan, 1e400
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _bounded(kind, test, bound_text):
    what = "an integer" if kind is int else "a finite number"

    def parse(text):
        value = _number(kind, text)
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what} {bound_text}, got {text!r}")
        return value

    parse.__name__ = f"{kind.__name__} {bound_text}"  # argparse's "invalid <name> value"
    return parse


def _at_least(kind, low, high=None):
    """An argparse type: a finite number of ``kind`` (int or float) in ``[low, high]`` (no upper
    bound when ``high`` is None); ``inf`` and ``nan`` are refused."""
    if high is None:
        return _bounded(kind, lambda v: v >= low, f">= {low}")
    return _bounded(kind, lambda v: low <= v <= high, f"in [{low}, {high}]")


def _more_than(kind, low):
    """An argparse type: a finite number of ``kind`` (int or float) greater than ``low`` (a
    time limit, a scale); ``inf`` and ``nan`` are refused."""
    return _bounded(kind, lambda v: v > low, f"> {low}")
