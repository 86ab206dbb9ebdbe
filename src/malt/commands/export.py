"""`malt export`: write a finished run's model as one ONNX or TorchScript file."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.deploy.options import ExportOptions

HELP = "export a trained run's model to ONNX or TorchScript, with a JSON sidecar"


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ExportOptions)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from malt.deploy.export import export, sidecar_path
    from malt.runs.load import load_run

    options = read_options(args, ExportOptions)
    trained = load_run(options.run, vocabs=options.vocabs)
    info = export(trained, options.out, options.format, overwrite=options.overwrite,
                  calibrated=not options.uncalibrated)
    print(f"wrote {options.out} ({info['bytes'] / 2**20:,.1f} MiB, {options.format}) and "
          f"{sidecar_path(Path(options.out))}")
    print("inputs:  " + ", ".join(f"{i['name']} {i['dtype']} {list(i['shape'])}"
                                  for i in info["inputs"]))
    calibration = info["calibration"]
    print("outputs: " + ", ".join(f"{o['name']} {o['dtype']} {list(o['shape'])}"
                                  for o in info["outputs"])
          + ("" if calibration is None else f" (calibrated: {calibration['method']})"))
    return 0
