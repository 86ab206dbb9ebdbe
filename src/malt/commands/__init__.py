"""One module per `malt` sub-command.

Each module defines `HELP` (one line), `configure(parser)` and `run(args) -> int`. Top-level
imports stay light (heavy libraries are imported inside `run`) so that `malt --help` is fast.
The CLI discovers the modules by name; adding a command means adding a module here. Modules
whose name starts with `_` are helpers the commands share (flags, progress display).
"""
