"""argparse help for the ``funasr-lite`` commands: the Usage block verbatim, then each flag with its default."""

import argparse
import inspect
from typing import Callable, Optional


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks (the Usage block stays copy-pasteable) and appends
    ``(default: ...)`` to flags whose default says something (not None, False or an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == []:
            return action.help or ""
        return super()._get_help_string(action)


def tool_parser(command: Callable, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """A parser whose description is ``command``'s docstring (summary line and Usage block)."""
    return argparse.ArgumentParser(
        prog=prog, description=inspect.cleandoc(command.__doc__ or ""), formatter_class=HelpFormatter
    )
