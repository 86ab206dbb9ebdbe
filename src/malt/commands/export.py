"""`malt export`: write a finished run's model as one ONNX or TorchScript file."""

from __future__ import annotations

import argparse
from typing import get_args

from malt.deploy.choices import ExportFormat

HELP = "export a trained run's model to ONNX or TorchScript, with a JSON sidecar"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory written by `malt train`")
    parser.add_argument("--format", default="onnx", choices=get_args(ExportFormat),
                        help="onnx (pip install 'malt[onnx]') or torchscript (default onnx)")
    parser.add_argument("--out", required=True,
                        help="file to write (model.onnx / model.pt); the sidecar is FILE.json")
    parser.add_argument("--vocabs", default=None,
                        help="vocabs the table sizes come from (default: the run's training "
                             "data's)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace FILE and its sidecar if they exist")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from malt.deploy.export import export, sidecar_path
    from malt.runs.load import load_run

    trained = load_run(args.run, vocabs=args.vocabs)
    info = export(trained, args.out, args.format, overwrite=args.overwrite)
    print(f"wrote {args.out} ({info['bytes'] / 2**20:,.1f} MiB, {args.format}) and "
          f"{sidecar_path(Path(args.out))}")
    print("inputs:  " + ", ".join(f"{i['name']} {i['dtype']} {list(i['shape'])}"
                                  for i in info["inputs"]))
    print("outputs: " + ", ".join(f"{o['name']} {o['dtype']} {list(o['shape'])}"
                                  for o in info["outputs"]))
    return 0
