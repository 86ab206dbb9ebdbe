"""Mutation testing of malt's core with mutmut (pinned in the `mutation` extra; not run in CI).

    pip install -e '.[mutation]'
    python scripts/mutation.py                 # every group (hours on 2 cores)
    python scripts/mutation.py metrics batches # some groups
    python scripts/mutation.py --report        # the table of the last runs, no new run
    python scripts/mutation.py --survivors     # test again only what was not killed

Each group mutates some modules of `src/malt` and runs the tests that pin them, in its own copy
of the working tree under `.mutation/<group>/` (mutmut's `mutants/` and results stay there, so a
rerun continues where the last one stopped; mutmut maps only new test names to the functions
they call, so after changing what an existing test calls, remove `.mutation/<group>/` to start
over). The report gives, per module, the mutants killed (a test failed, or the mutant timed
out), survived, and not reached by any test, and the kill rate over the mutants that are not
listed in `scripts/mutation-equivalent.txt` (mutants that behave exactly like the original, or
whose survival is accepted, each with its reason; see docs/testing.md).
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
EQUIVALENT = Path(__file__).with_name("mutation-equivalent.txt")
KILLED = {"killed", "timeout"}


@dataclass(frozen=True)
class Group:
    modules: tuple[str, ...]
    """Files under src/ to mutate."""
    tests: tuple[str, ...]
    """Test files (or pytest node ids) that pin them."""
    names: tuple[str, ...] = ()
    """Mutant name patterns to run (default: every mutant of the modules)."""


GROUPS = {
    "metrics": Group(("malt/metrics.py",), ("tests/test_metrics.py",
                                            "tests/eval/test_target.py")),
    "calibration": Group(("malt/metrics.py",), ("tests/test_metrics.py",),
                         names=("malt.metrics.x_pcoc__mutmut_*",
                                "malt.metrics.x_reliability_bins__mutmut_*",
                                "malt.metrics.x_expected_calibration_error__mutmut_*",
                                "malt.metrics.x__probs__mutmut_*",
                                "malt.metrics.xǁReliabilityBinsǁ*")),
    "compare": Group(("malt/eval/compare.py",), ("tests/eval/test_compare.py",)),
    "bootstrap": Group(("malt/bootstrap.py",), ("tests/test_bootstrap.py",)),
    "slices": Group(("malt/eval/slices.py",), ("tests/eval/test_slices.py",)),
    "truth": Group(("malt/eval/truth.py",), ("tests/eval/test_truth.py",)),
    "selection": Group(("malt/experiments/search.py",),
                       ("tests/experiments/test_study_search.py",
                        "tests/experiments/test_study_selection.py")),
    "greedy": Group(("malt/experiments/greedy.py",), ("tests/experiments/test_study_greedy.py",)),
    "attention": Group(("malt/layers/attention.py",), ("tests/layers/test_attention.py",)),
    "losses": Group(("malt/losses/views.py", "malt/losses/ranking.py"),
                    ("tests/losses/test_views.py", "tests/losses/test_ranking.py")),
    "loss_terms": Group(("malt/losses/terms.py",), ("tests/losses/test_terms.py",)),
    "delayed": Group(("malt/losses/delayed.py", "malt/data/as_of.py"),
                     ("tests/losses/test_delayed.py", "tests/losses/test_dfm_loss.py",
                      "tests/data/test_as_of.py")),
    "grad_methods": Group(("malt/training/grad_methods.py",),
                          ("tests/training/test_grad_methods.py",)),
    # test_aggregation.py needs torchjd (malt[aux]); without it its mutants survive.
    "aux_methods": Group(("malt/training/task_weighting.py", "malt/training/aggregation.py",
                          "malt/training/weights_table.py"),
                         ("tests/training/test_task_weighting.py",
                          "tests/training/test_aggregation.py",
                          "tests/training/test_weights_table.py")),
    "optim": Group(("malt/training/optim.py", "malt/training/row_adam.py"),
                   ("tests/training/test_optim.py", "tests/training/test_row_adam.py")),
    "trainer_step": Group(("malt/training/trainer.py",),
                          ("tests/training/test_train_step.py",
                           *(f"tests/training/test_aux_methods_training.py::{name}" for name in (
                               "test_a_loss_weighting_starts_as_the_plain_weighted_sum",
                               "test_uncertainty_steps_with_its_weights_once_they_have_moved",
                               "test_gcs_ema_without_smoothing_is_gcs_clip",
                               "test_an_aggregator_steps_with_its_aggregated_gradient")),
                           "tests/training/test_precision_training.py::"
                           "test_a_bf16_step_is_adam_on_the_float32_losses_of_a_bf16_forward"),
                          names=("malt.training.trainer.xǁTrainerǁtrain_step__mutmut_*",
                                 "malt.training.trainer.xǁTrainerǁ_surgery_step__mutmut_*")),
    "attribution_rules": Group(("malt/sources/attribution/rules.py",
                                "malt/sources/attribution/dda.py"),
                               ("tests/sources/attribution/test_attribution_rules.py",)),
    "batches": Group(("malt/data/batches.py",), ("tests/data/test_batches.py",
                                                 "tests/data/test_as_of.py",
                                                 "tests/data/test_click_time.py",
                                                 "tests/data/test_bag_columns.py",
                                                 "tests/data/test_ragged_sequences.py")),
    "vocab": Group(("malt/data/vocab.py",), ("tests/data/test_vocab.py",
                                             "tests/data/test_cache.py")),
    "outputs": Group(("malt/outputs.py", "malt/locks.py", "malt/file_names.py", "malt/host.py"),
                     ("tests/test_outputs.py", "tests/test_locks.py",
                      "tests/test_file_names.py", "tests/test_host.py")),
    "data_checks": Group(("malt/data/reader.py", "malt/data/vocab.py", "malt/data/layout.py",
                          "malt/data/cache.py"),
                         ("tests/data/test_reader_errors.py", "tests/data/test_numeric.py",
                          "tests/data/test_vocab.py", "tests/data/test_layout.py"),
                         names=("malt.data.reader.x__numbers__mutmut_*",
                                "malt.data.reader.x__floats__mutmut_*",
                                "malt.data.reader.x__float_array__mutmut_*",
                                "malt.data.reader.x__range__mutmut_*",
                                "malt.data.reader.x__checked_range__mutmut_*",
                                "malt.data.reader.x__label_weights__mutmut_*",
                                "malt.data.reader.x__did_you_mean__mutmut_*",
                                "malt.data.reader.xǁChunkStatsǁadd__mutmut_*",
                                "malt.data.vocab.x__check_rows__mutmut_*",
                                "malt.data.layout.x__day_files__mutmut_*",
                                "malt.data.cache.x__warn_weights_above_one__mutmut_*")),
    "user_groups": Group(("malt/data/reader.py",), ("tests/data/test_user_groups.py",),
                         names=("malt.data.reader.x_user_groups__mutmut_*",)),
    "pooled_convert": Group(("malt/data/reader.py",), ("tests/data/test_pooled_convert.py",),
                            names=("malt.data.reader.xǁDayConverterǁconvert__mutmut_*",)),
    "sequence_lengths": Group(("malt/data/reader.py", "malt/layers/padding.py"),
                              ("tests/data/test_sequence_lengths.py",
                               "tests/data/test_ragged_sequences.py",
                               "tests/data/test_oov_by_row.py", "tests/layers/test_encoder.py",
                               "tests/layers/test_backbone_layers.py",
                               "tests/layers/test_padding.py",
                               "tests/data/test_length_column.py"),
                              names=("malt.data.reader.xǁDayConverterǁ_ragged_sequences__mutmut_*",
                                     "malt.data.reader.x_item_counts__mutmut_*",
                                     "malt.data.reader.x_leading_items__mutmut_*",
                                     "malt.data.reader.xǁDayConverterǁoov_by_row__mutmut_*",
                                     "malt.layers.padding.*")),
    "distinct_rows": Group(("malt/training/row_adam.py",), ("tests/training/test_row_adam.py",),
                           names=("malt.training.row_adam.x_distinct_rows__mutmut_*",)),
    "impression_rows": Group(("malt/sources/attribution/mac.py",),
                             ("tests/sources/attribution/test_attribution_impressions.py",),
                             names=("malt.sources.attribution.mac.x_impression_sums__mutmut_*",
                                    "malt.sources.attribution.mac.x__impression_min__mutmut_*",
                                    "malt.sources.attribution.mac.x_write_impressions_mac"
                                    "__mutmut_*")),
    "grow_vocabs": Group(("malt/data/vocab_build.py",), ("tests/training/test_warm_start.py",),
                         names=("malt.data.vocab_build.x_grow_vocabs__mutmut_*",)),
    "checkpoints": Group(("malt/runs/tensor_tree.py", "malt/runs/checkpoint.py"),
                         ("tests/runs/test_tensor_tree.py",
                          "tests/runs/test_checkpoint.py")),
    # Only the divergence tests: the rest of test_trainer.py trains for a minute per mutant.
    "divergence": Group(("malt/training/trainer.py",),
                        ("tests/training/test_trainer.py::test_a_diverging_run_stops_at_the_"
                         "first_non_finite_logged_loss",
                         "tests/training/test_trainer.py::test_a_day_that_ends_with_non_finite_"
                         "parameters_is_not_checkpointed",
                         "tests/training/test_trainer.py::test_every_rank_stops_when_one_ranks_"
                         "loss_is_not_finite"),
                        names=("malt.training.trainer.xǁTrainerǁ_refuse_divergence__mutmut_*",
                               "malt.training.trainer.xǁTrainerǁ_refuse_non_finite_parameters"
                               "__mutmut_*")),
    "config_ranges": Group(("malt/typed_fields.py",),
                           ("tests/test_config_ranges.py", "tests/test_typed_fields.py",
                            "tests/commands/test_cli_ranges.py"),
                           names=("malt.typed_fields.xǁRangeǁ*",
                                  "malt.typed_fields.x__number__mutmut_*",
                                  "malt.typed_fields.x_AtLeast__mutmut_*",
                                  "malt.typed_fields.x_Above__mutmut_*",
                                  "malt.typed_fields.x_Between__mutmut_*",
                                  "malt.typed_fields.x_ranges__mutmut_*",
                                  "malt.typed_fields.x_states_range__mutmut_*",
                                  "malt.typed_fields.x__qualified__mutmut_*",
                                  "malt.typed_fields.x_coerce__mutmut_*",
                                  "malt.typed_fields.x_check_ranges__mutmut_*",
                                  "malt.typed_fields.x__check_fields__mutmut_*")),
}


def _setup_cfg(group: Group) -> str:
    lines = ["[mutmut]", "source_paths = src", "process_isolation = forkserver",
             "only_mutate ="]
    lines += [f"    src/{m}" for m in group.modules]
    lines += ["pytest_add_cli_args_test_selection ="]
    lines += [f"    {t}" for t in group.tests]
    return "\n".join(lines) + "\n"


def _copy_tree(target: Path) -> None:
    """The working tree (as git sees it) into `target`, replacing its sources and tests."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in ("src", "tests"):
        shutil.rmtree(target / name, ignore_errors=True)
    for name in files:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    # The project's own [tool.mutmut] (none) would win over setup.cfg; pytest's options stay.
    text = (target / "pyproject.toml").read_text()
    (target / "pyproject.toml").write_text(text.replace("[tool.mutmut]", "[tool.unused]"))


def run_group(name: str, group: Group, children: int, survivors: bool = False) -> None:
    target = WORK / name
    names = list(group.names)
    if survivors:
        names = [m for m, status in results(name).items()
                 if status not in KILLED and in_group(m, group)]
        if not names:
            return
    target.mkdir(parents=True, exist_ok=True)
    _copy_tree(target)
    (target / "setup.cfg").write_text(_setup_cfg(group))
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *names]
    print(f"== {name}: {' '.join(group.modules)}", flush=True)
    with (target / "mutmut.log").open("w") as log:
        subprocess.run(command, cwd=target, stdout=log, stderr=subprocess.STDOUT, check=False)


def results(name: str) -> dict[str, str]:
    """Mutant name -> status, of the last run of group `name`."""
    target = WORK / name
    if not (target / "mutants").is_dir():
        return {}
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                         cwd=target, capture_output=True, text=True, check=False).stdout
    statuses = {}
    for line in out.splitlines():
        mutant, sep, status = line.strip().rpartition(": ")
        if sep:
            statuses[mutant] = status
    return statuses


def equivalent() -> dict[str, str]:
    """Mutant name -> reason, of the mutants listed as equivalent or accepted (`name  # reason`
    per line; a reason "as above" repeats the reason of the line before)."""
    if not EQUIVALENT.is_file():
        return {}
    listed: dict[str, str] = {}
    reason = ""
    for line in EQUIVALENT.read_text().splitlines():
        name, _, why = (part.strip() for part in line.partition("#"))
        if name:
            reason = reason if why == "as above" else why
            listed[name] = reason
    return listed


def in_group(mutant: str, group: Group) -> bool:
    """Whether `mutant` is one the group runs (its name patterns, or every mutant)."""
    return any(fnmatch.fnmatchcase(mutant, p) for p in group.names or ("*",))


def module_of(mutant: str) -> str:
    """`malt.data.vocab.xǁVocabLookupǁload__mutmut_3` -> `malt.data.vocab`."""
    head = mutant.split("__mutmut_")[0]
    parts = head.split(".")
    for i, part in enumerate(parts):
        if part.startswith(("x_", "xǁ")):
            return ".".join(parts[:i])
    return ".".join(parts[:-1])


def report(names: list[str]) -> str:
    """A Markdown table: per module, killed / survived / no tests / listed / kill rate."""
    listed = equivalent()
    rows = ["| module | mutants | killed | survived | no tests | equivalent or accepted | "
            "kill rate (non-equivalent) |", "|---|---:|---:|---:|---:|---:|---:|"]
    survivors, accepted = [], []
    for name in names:
        by_module: dict[str, Counter] = {}
        for mutant, status in results(name).items():
            if not in_group(mutant, GROUPS[name]):
                continue
            counts = by_module.setdefault(module_of(mutant), Counter())
            counts["total"] += 1
            if mutant in listed and status not in KILLED:
                counts["listed"] += 1
                accepted.append(f"- `{mutant}`: {listed[mutant]}")
            elif status in KILLED:
                counts["killed"] += 1
            elif status == "no tests":
                counts["no tests"] += 1
                survivors.append(mutant)
            else:
                counts["survived"] += 1
                survivors.append(mutant)
        for module, c in sorted(by_module.items()):
            counted = c["total"] - c["listed"]
            rate = c["killed"] / counted if counted else 1.0
            rows.append(f"| `{module}` | {c['total']} | {c['killed']} | {c['survived']} | "
                        f"{c['no tests']} | {c['listed']} | {100 * rate:.1f}% |")
    text = "\n".join(rows)
    if survivors:
        text += "\n\nNot killed and not listed:\n" + "\n".join(f"- {m}" for m in survivors)
    if accepted:
        text += "\n\nSurvivors listed as equivalent or accepted:\n" + "\n".join(accepted)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="*", help=f"groups to run (default: all of "
                                                  f"{', '.join(GROUPS)})")
    parser.add_argument("--report", action="store_true", help="only print the last results")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--survivors", action="store_true",
                        help="run only the mutants the last run did not kill (after new tests)")
    args = parser.parse_args()
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown groups {unknown}; choose from {list(GROUPS)}")
    names = args.groups or list(GROUPS)
    if not args.report:
        for name in names:
            run_group(name, GROUPS[name], args.children, args.survivors)
    print(report(names))


if __name__ == "__main__":
    main()
