"""The `malt` command line: discovers the sub-commands in `malt.commands` and dispatches."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import signal
import sys
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn

import malt.commands
from malt.allocator import retain_freed_memory
from malt.commands._options import add_options, config_flags, read_options
from malt.errors import Interrupted, MaltError, describe_os_error
from malt.typed_fields import validate

log = logging.getLogger(__name__)

EXIT_BAD_INPUT = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class MaltOptions:
    """What `malt` takes before the command."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    """The least severe messages shown on the console (a run directory's log keeps INFO)."""

    def __post_init__(self) -> None:
        validate(self, "")


def command_names() -> list[str]:
    """The sub-commands, as typed (`upgrade-run` for `malt.commands.upgrade_run`)."""
    return sorted(info.name.replace("_", "-") for info in
                  pkgutil.iter_modules(malt.commands.__path__)
                  # helpers the commands share, not commands
                  if not info.name.startswith("_"))


def build_parser(configure: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The `malt` parser; only the commands in `configure` (default: all) get their flags.

    A command module's import is light (its work is imported when it runs); configuring its
    flags may load what they are typed with, so `main` configures the command it runs only."""
    parser = argparse.ArgumentParser(
        prog="malt", description="Multi-Attribution Learning Toolkit for CVR prediction.")
    add_options(parser, MaltOptions)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in command_names():
        module = importlib.import_module(f"malt.commands.{name.replace('-', '_')}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        if configure is None or name in configure:
            module.configure(cmd)
            # A private name: commands may have an option called --run.
            cmd.set_defaults(_handler=module.run)
            _remember_parsers(cmd)
    return parser


def command_in(argv: Sequence[str]) -> str | None:
    """The command `argv` runs (after the top-level options), or None (`--help`, none, or an
    unknown one, which the parser then refuses)."""
    names = set(command_names())
    # Each of them takes one value, the word after it (or after its `=`).
    top_level = {flag.option for flag in config_flags(MaltOptions)}
    words = iter(argv)
    for word in words:
        if word in top_level:
            next(words, None)
        elif not word.startswith("-"):
            return word if word in names else None
    return None


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Let every (sub-)command parser name itself in the parsed namespace, so that an error
    found after parsing is reported with the innermost command's usage."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _remember_parsers(sub)


def main(argv: list[str] | None = None) -> int:
    command = "malt"
    previous_term = _stop_on_sigterm_as_on_ctrl_c()
    try:  # a Ctrl-C while the commands are being imported is an interruption too
        argv = sys.argv[1:] if argv is None else argv
        parser = build_parser(configure=[c for c in [command_in(argv)] if c])
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            # argparse reports unknown flags with the top-level usage; show the command's own.
            args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        level = read_options(args, MaltOptions).log_level
        command = f"malt {args.command}"
        console = logging.StreamHandler()
        # The level sits on the handler: run directories still log INFO to their own files.
        console.setLevel(level)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=level, handlers=[console])
        retain_freed_memory()
        return int(args._handler(args) or 0)
    except MaltError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        # The last line of defence: an operating-system error no reader or writer put into
        # words (readers and writers raise `MaltError`s naming what they read or wrote).
        log.debug("operating-system error", exc_info=True)
        print(f"{command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Interrupted) as exc:
        # Commands that can be resumed say how themselves; here the others end.
        stopped = f" ({exc})" if isinstance(exc, Interrupted) else ""
        print(f"{command}: interrupted{stopped}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RuntimeError as exc:
        # Python 3.11 wraps a Ctrl-C that lands while a class is being made (a module of
        # dataclasses being imported) in a RuntimeError.
        if not isinstance(exc.__cause__, KeyboardInterrupt):
            raise
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        _forget_interrupt()


def run() -> NoReturn:
    """The `malt` and `python -m malt` entry point: `main`, then exit with its status."""
    status = main()
    # The work is done and said: a Ctrl-C while the interpreter shuts down (a moment, with
    # torch loaded) would otherwise end the process by the signal or with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        _exit_rank(status)
    sys.exit(status)


def _exit_rank(status: int) -> NoReturn:
    """End a torchrun rank whose work is done without the interpreter's teardown: there,
    now and then (about 1 launch in 30 on a loaded 2-core machine), a C++ thread torch
    leaves behind aborts the process ("terminate called without an active exception") after
    the run is complete, and torchrun reports the whole launch failed."""
    from malt.training.distributed import leave_process_group

    leave_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _stop_on_sigterm_as_on_ctrl_c():
    """Make SIGTERM (what `kill`, a job scheduler's time limit or a container's stop sends)
    stop the command as Ctrl-C does: training saves a checkpoint, outputs are left whole or
    absent, and the processes the command started (a study's workers) get the Ctrl-C too, as
    from a terminal. Returns the handler it replaced (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate_as_ctrl_c)


def _terminate_as_ctrl_c(signum, frame) -> None:
    import multiprocessing

    for child in multiprocessing.active_children():
        os.kill(child.pid, signal.SIGINT)
    handler = signal.getsignal(signal.SIGINT)
    if handler is signal.SIG_DFL:  # nothing handles a Ctrl-C either: end by the signal
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    elif callable(handler):
        handler(signal.SIGINT, frame)


def _forget_interrupt() -> None:
    """Let the process exit with the status `main` returns after a Ctrl-C it handled.

    CPython marks a KeyboardInterrupt raised inside code that `exec` runs from a string
    (dataclasses and named tuples make their methods so, all through start-up) as unhandled
    even when it is caught, and `python -m malt` then ends by SIGINT instead of exiting with
    130; the next such `exec` clears the mark."""
    exec("")
