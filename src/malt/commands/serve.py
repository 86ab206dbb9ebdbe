"""`malt serve`: score HTTP requests with a finished run's model or its ONNX export
(pip install 'malt[serve]')."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.serve.options import ServeOptions

HELP = "serve a trained run's model (or its ONNX export) over HTTP: rows in, probabilities out"


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ServeOptions)


def run(args: argparse.Namespace) -> int:
    import signal

    from malt.deploy.engines import scoring_device
    from malt.errors import ConfigError

    # SIGHUP reloads the model once the service is up; until then (the model may take a while
    # to load) it would end the process, and the model loaded is the newest one anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    options = read_options(args, ServeOptions)
    try:
        import uvicorn

        from malt.serve.app import create_app
    except ImportError as exc:
        raise ConfigError(f"malt serve needs FastAPI and uvicorn ({exc.name} is missing): "
                          "pip install 'malt[serve]'") from exc
    from malt.serve.model import ModelSource, ServedModel

    engine = options.engine_name
    device = scoring_device(engine, options.device)

    def load(source: ModelSource) -> ServedModel:
        return ServedModel.load(source, vocabs=options.vocabs, engine=engine, device=device,
                                precision=options.precision)

    model = load(ModelSource("run", options.run) if options.export is None
                 else ModelSource("export", options.export))
    app = create_app(model, max_rows=options.max_rows, batch_rows=options.batch_rows,
                     batch_wait_ms=options.batch_wait_ms, load=load, reload_on_hangup=True)
    calibration = model.calibration
    in_precision = "" if options.precision == "fp32" else f" in {options.precision}"
    print(f"serving {model.version} ({model.metadata()['model']}, {engine} on {device.type}"
          f"{in_precision}, "
          f"{'uncalibrated' if calibration is None else calibration['method'] + ' calibration'}"
          f") on http://{options.host}:{options.port}; SIGHUP reloads the model, SIGTERM or "
          "Ctrl-C stops it", flush=True)
    # uvicorn answers SIGTERM by finishing the requests in flight, then raises the signal
    # again: with this handler the process then exits 0 instead of dying by it.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.Server(uvicorn.Config(app, host=options.host, port=options.port,
                                  log_level="warning")).run()
    print("stopped", flush=True)
    return 0
