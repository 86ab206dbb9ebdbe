"""A run directory: the durable record of one training run.

    <run>/config.json        resolved RunConfig (enough to reproduce the run)
    <run>/log.txt            the run's log
    <run>/tb/                TensorBoard scalars
    <run>/checkpoint.pt      latest checkpoint (day boundary, or where it was interrupted)
    <run>/metrics.json       evaluation metrics, written when training has finished
    <run>/predictions.npz    scores of every evaluated view on the evaluation day
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malt.config import RunConfig
from malt.data.layout import atomic_write_text
from malt.errors import ConfigError


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory; creating the object touches nothing on disk."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def predictions_file(self) -> Path:
        return self.path / "predictions.npz"

    @property
    def log_file(self) -> Path:
        return self.path / "log.txt"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tb"

    def is_complete(self) -> bool:
        return self.metrics_file.is_file()

    def save_config(self, config: RunConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, json.dumps(config.to_dict(), indent=2))

    def load_config(self) -> RunConfig:
        if not self.config_file.is_file():
            raise ConfigError(f"{self.path} is not a run directory (no config.json)")
        return RunConfig.from_dict(json.loads(self.config_file.read_text()),
                                   source=str(self.config_file))

    def save_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.metrics_file, json.dumps(metrics, indent=2))

    def load_metrics(self) -> dict[str, Any]:
        if not self.metrics_file.is_file():
            raise ConfigError(f"run {self.path} has no metrics yet (unfinished run?)")
        return json.loads(self.metrics_file.read_text())

    def attach_log(self) -> logging.Handler:
        """Send the `malt` loggers' INFO messages to the run's log file as well."""
        self.path.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        logger = logging.getLogger("malt")
        logger.addHandler(handler)
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
        return handler
