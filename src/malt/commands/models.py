"""`malt models`: the registered models (plugins included), one line each, with their parameter
counts."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.runs.options import DEFAULT_VOCAB_ROWS, ModelsOptions

HELP = ("list the registered models (those of installed plugins too) and their parameter "
        "counts for a main/aux setting")


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ModelsOptions)


def vocab_sizes(fields: tuple[str, ...], specs: list[str]) -> dict[str, int]:
    """Rows per table from `N` / `FIELD=N` specs, later ones overriding earlier ones."""
    from malt.errors import ConfigError

    sizes = dict.fromkeys(fields, DEFAULT_VOCAB_ROWS)
    for spec in specs:
        name, _, value = spec.rpartition("=")
        if name and name not in sizes:
            raise ConfigError(f"--vocab-size {spec}: '{name}' is not a categorical field nor "
                              f"a bag (they are: {', '.join(fields)})")
        try:
            rows = int(value)
        except ValueError:
            rows = 0
        if rows < 1:
            raise ConfigError(f"--vocab-size {spec}: the row count must be a positive integer")
        for field in ([name] if name else fields):
            sizes[field] = rows
    return sizes


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from malt.data import schema_for
    from malt.data.task import CAT, Task
    from malt.data.vocab import VocabInfo
    from malt.models import model_names, model_spec

    options = read_options(args, ModelsOptions)
    schema = schema_for(None, options.schema)
    task = Task(options.main or schema.labels[0], tuple(options.aux))
    task.validate(schema)
    sizes = vocab_sizes(schema.table_names, options.vocab_size)
    vocab = VocabInfo(sizes, {s.name: 0 for s in schema.id_sequences})
    defaults = "the release's" if options.release_defaults else "malt's"
    print(f"main {task.main}, aux {' '.join(task.aux) or '(none)'}; {defaults} defaults; "
          f"schema {schema.name}; {sum(sizes.values()):,} embedding rows in "
          f"{len(sizes)} tables")
    for name in model_names():
        spec = model_spec(name)
        summary = (spec.model.__doc__ or "").strip().splitlines()[0] if spec.model.__doc__ \
            else spec.traits.display_name
        if spec.source is not None:
            summary += f" [plugin: {spec.source}]"
        line = f"{name:<14} {summary}"
        if options.params:
            config = spec.make_config(release_defaults=options.release_defaults)
            own = task
            if CAT in task.aux and not spec.traits.takes_cat:
                # A model with one logit per task is counted on the task without `cat`.
                own = dataclasses.replace(task, aux=tuple(v for v in task.aux if v != CAT))
                summary += f" (counted without '{CAT}')"
            with torch.device("meta"):       # counts only: allocate nothing
                dense, embedding = spec.build(schema, vocab, own, config).parameter_counts()
            line = f"{name:<14} dense {dense:>11,}  embedding {embedding:>13,}  {summary}"
        print(line)
    return 0
