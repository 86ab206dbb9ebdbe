"""The one study engine: every study of both papers is an entry of one registry, run by one
driver.

The driver takes the study's data (or simulates the preset's data set into `<out>/data`),
claims the output directory, prepares the data, builds the `Study`, runs the studies asked for
(the scheduler trains what is not done yet), writes their tables and figures, and reports an
interruption (checkpoints are saved; the same command resumes) or failed runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from malt.data.cache import prepare
from malt.data.layout import find_layout
from malt.data.schema import MAC, Schema, schema_for
from malt.errors import ConfigError, Interrupted
from malt.experiments.delay import study_delay
from malt.experiments.grad_study import study_grad_methods
from malt.experiments.kaml import study_kaml
from malt.experiments.mac import MAC_STUDIES
from malt.experiments.options import ALL, StudyName, StudyOptions
from malt.experiments.output import StudyOutput, write_output
from malt.experiments.presets import DEFAULT_PRESET, OWN_DATA, get_preset
from malt.experiments.scheduler import Backend, LocalBackend
from malt.experiments.study import STUDY_KIND, Study, claim_output
from malt.models import model_spec
from malt.outputs import OutputDir
from malt.training.distributed import resolve_device
from malt.typed_fields import SEED_LIMIT

Family = Literal["mac", "kaml", "delay"]


@dataclass(frozen=True)
class Protocol:
    """One study: what it computes, and which family of data and preset it belongs to."""

    name: str
    title: str
    family: Family
    """`mac`: multi-attribution data (MAC simulator); `kaml`: incomplete multi-label data
    (app-promotion simulator; the schema names campaigns, targets and true labels); `delay`:
    multi-attribution data with the labels' arrival and the clicks' times (MAC simulator with
    long-tail delays)."""
    run: Callable[[Study], StudyOutput]
    in_all: bool = True
    """Whether `all` runs it (the MAC paper's studies; not the extensions beyond the paper)."""


SIMULATED: dict[Family, str] = {"mac": "", "kaml": "app-promotion ",
                                 "delay": "long-tail delay "}
"""What the notes call a family's simulated data set, before its size."""

STUDIES: dict[StudyName, Protocol] = {
    **{name: Protocol(name, title, "mac", fn) for name, (fn, title) in MAC_STUDIES.items()},
    "grad-methods": Protocol("grad-methods", "every --grad-method against the plain sum, with "
                             "the per-view weights each learned", "mac", study_grad_methods,
                             in_all=False),
    "kaml": Protocol("kaml", "KAML paper Tables 1-4", "kaml", study_kaml),
    "delay": Protocol("delay", "delayed feedback: each method judged on the next day", "delay",
                      study_delay),
}


def protocols(names: tuple[str, ...]) -> list[Protocol]:
    """The studies asked for (names of `STUDIES`, or `all`: every study of the MAC paper);
    one family at a time."""
    if ALL in names and len(names) > 1:
        raise ConfigError(f"'{ALL}' runs every MAC study: name it alone")
    chosen = [p for p in STUDIES.values() if p.family == "mac" and p.in_all] \
        if names == (ALL,) else [STUDIES[n] for n in names]
    if len({p.family for p in chosen}) > 1:
        apart = next(p.name for p in chosen if p.family != "mac")
        raise ConfigError(f"run the {apart} study apart from the MAC studies (it needs other "
                          "data)")
    return chosen


_STUDY_OWN_OPTIONS = {"grad_methods": "grad-methods", "dwa_period": "grad-methods",
                      "baselines": "kaml", "delay_window_days": "delay"}
"""Options that only one study reads, by field, and that study."""


def check_study_options(options: StudyOptions, chosen: list[Protocol]) -> None:
    """Refuse an option that none of the chosen studies reads, rather than ignore it."""
    names = {p.name for p in chosen}
    defaults = StudyOptions(names=options.names)
    for option, study in _STUDY_OWN_OPTIONS.items():
        if study not in names and getattr(options, option) != getattr(defaults, option):
            flag = "--" + option.replace("_", "-")
            raise ConfigError(f"{flag} is read by the {study} study only, and this command "
                              f"runs {', '.join(sorted(names))}")


def run_studies(options: StudyOptions, say: Callable[[str], None] = print) -> int:
    """Run the studies of `options`; 0 when every run succeeded, 1 when some failed, 130 when
    interrupted."""
    chosen = protocols(options.names)
    check_study_options(options, chosen)
    family = chosen[0].family
    options = with_preset(options, say)
    # The study's lock is held for the whole command: its cells (trained here, in worker
    # processes or on Ray) each hold their own run's lock inside it.
    with OutputDir(study_out(options, family), STUDY_KIND).writing(), \
            study_backend(options) as backend:
        return _run_protocols(chosen, open_study(options, family, say, backend), say)


def _run_protocols(chosen: list[Protocol], study: Study, say: Callable[[str], None]) -> int:
    try:
        for protocol in chosen:
            started, before = time.perf_counter(), len(study.trained)
            say(f"\n== study {protocol.name} ({protocol.title}) ==")
            result = protocol.run(study)
            for _, table in result.tables:
                say(f"\n{table.markdown()}")
            paths = write_output(study.output, protocol.name, result)
            say(f"\nwrote {', '.join(str(p) for p in paths)}\n{study.cost_summary(before)}; "
                f"{time.perf_counter() - started:.0f} s wall")
    except (Interrupted, KeyboardInterrupt):
        say(f"\ninterrupted; checkpoints are saved. Run the same command again to resume "
            f"(completed runs under {study.runs} are kept).")
        return 130
    if study.failures:
        say(f"\n{len(study.failures)} run(s) failed (their cells show –):")
        for outcome in study.failures.values():
            say(f"  {outcome.cell.run_dir(study.runs).path}: {outcome.error}")
        say("Fix the cause and run the same command again: completed runs are skipped.")
        return 1
    return 0


@contextmanager
def study_backend(options: StudyOptions) -> Iterator[Backend]:
    """The backend of `options`; a Ray session it opens is shut down on the way out."""
    if options.backend == "local":
        if options.address is not None:
            raise ConfigError("--address joins a Ray cluster: it needs --backend ray")
        yield LocalBackend()
        return
    from malt.experiments.ray_backend import RayBackend

    with RayBackend(options.address) as backend:
        yield backend


def with_preset(options: StudyOptions, say: Callable[[str], None] = print) -> StudyOptions:
    """`options` with their preset: the one asked for, else `own-data` when `--data` has a
    schema of its own (said), else `smoke`."""
    if options.preset is not None:
        return options
    if options.data is None or not own_schema(schema_for(options.data, _schema_file(options))):
        return replace(options, preset=DEFAULT_PRESET)
    say(f"no --preset: `{OWN_DATA}`, the preset of a data set with a schema of its own "
        f"(--preset {DEFAULT_PRESET} runs the smoke test's narrow model)")
    return replace(options, preset=OWN_DATA)


def own_schema(schema: Schema) -> bool:
    """Whether `schema` is a user's own: neither the MAC release's nor a simulator's (the
    columns the models read compared, not the name nor the columns left unread)."""
    from malt.sources.simulate.app_promotion import schema_dict

    def read(s: Schema) -> str:
        return replace(s, ignore_columns=()).fingerprint()

    return read(schema) not in {read(MAC), read(Schema.from_dict(schema_dict()))}


def _schema_file(options: StudyOptions) -> str | None:
    return options.overrides.get("data", {}).get("schema")


def open_study(options: StudyOptions, family: Family, say: Callable[[str], None],
               backend: Backend | None = None) -> Study:
    """The data provisioned and prepared, the output claimed, and the `Study` over them."""
    preset = get_preset(options.preset or DEFAULT_PRESET)
    setup = preset.kaml if family == "kaml" else preset.mac
    if options.shuffle:
        setup = replace(setup, train={**setup.train, "shuffle": True})
    if family == "kaml" and (options.targets or options.aux or options.aux_weights):
        raise ConfigError("--targets, --aux and --aux-weights are not used by the kaml study "
                          "(every action is a task, λ = 1)")
    seeds = options.seeds if options.seeds is not None else setup.seeds
    last = options.seed + max(seeds, options.validation_seeds or 0) - 1
    if last >= SEED_LIMIT:
        raise ConfigError(f"the seeds {options.seed} ... {last} run past the largest seed "
                          f"{SEED_LIMIT - 1}: pass a smaller --seed")
    for model in (*(options.models or ()), *(options.baselines or ())):
        model_spec(model)
    if options.backend == "local":  # on Ray the workers' devices count, not this machine's
        resolve_device(options.device)
    schema_file = _schema_file(options)
    out = study_out(options, family)
    data = options.data or out / "data"
    if options.data:
        find_layout(data)
        schema_for(data, schema_file)
    output = claim_output(out, data.resolve())
    if not options.data and not data.exists():
        say(f"simulating the '{setup.sim_size}' "
            f"{SIMULATED[family]}data set into {data} ...")
        _simulate(family, setup.sim_size, options.seed, data)
    data = data.resolve()
    dataset = prepare(data, schema_for(data, schema_file))
    if family == "kaml":
        _check_kaml_schema(dataset.schema)
    if own_schema(dataset.schema) and setup.model.get("release_defaults"):
        setup = replace(setup, model={k: v for k, v in setup.model.items()
                                      if k != "release_defaults"})
    release = bool(setup.model.get("release_defaults"))
    say(f"preset `{preset.name}` on schema '{dataset.schema.name}': "
        f"{'the release' if release else 'malt'}'s model defaults"
        f"{' (for results comparable with the MAC paper)' if release else ''}")
    simulated = SIMULATED[family]
    note = f"`{shown_path(data)}`" if options.data else \
        f"the simulated {simulated}`{setup.sim_size}` set (seed {options.seed})"
    return Study(**options.study_choices(),
                 preset=", ".join([preset.name, *(["shuffled within days"] if options.shuffle
                                                  else []),
                                   *(["malt's model defaults"] if family == "mac" and not release
                                     else [])]),
                 setup=setup, data=data, output=output, labels=dataset.schema.labels,
                 seeds=tuple(range(options.seed, options.seed + seeds)), dataset=dataset,
                 data_note=note, backend=backend, say=say)


def shown_path(path: Path) -> str:
    """How the tables name a data directory: relative to the working directory when it lies
    under it (the commands that made it ran there), else only its last two parts, so that
    tables copied elsewhere do not carry the layout of the machine they were made on."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(Path("…", *path.resolve().parts[-2:]))


def study_out(options: StudyOptions, family: Family) -> Path:
    """The study's output directory: --out, else `studies/<preset>` (`studies/kaml-<preset>`
    for the KAML study, `studies/delay-<preset>` for the delay study)."""
    if options.out is not None:
        return options.out
    preset = get_preset(options.preset or DEFAULT_PRESET).name
    return Path(f"studies/{family}-{preset}" if family != "mac" else f"studies/{preset}")


def _simulate(family: Family, size: str, seed: int, out: Path) -> None:
    if family == "kaml":
        from malt.sources.simulate.app_promotion import simulate_app_promotion
        from malt.sources.simulate.app_promotion import size_config as app_size

        simulate_app_promotion(app_size(size, seed=seed), out)
    else:
        from malt.sources.simulate import simulate, size_config

        delays = "long-tail" if family == "delay" else None
        simulate(size_config(size, seed=seed, purchase_delay=delays), out)


def _check_kaml_schema(schema: Schema) -> None:
    if not (schema.campaign_column and schema.target_action_column and schema.true_labels):
        raise ConfigError(f"schema '{schema.name}' lacks campaign, target-action or true-label "
                          "columns; the kaml study needs all three (pass --schema)")
