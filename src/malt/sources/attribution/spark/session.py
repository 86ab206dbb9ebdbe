"""The Spark session of `malt attribute --engine spark`.

An active session (a notebook's, a test's) is used as it is; otherwise one is built: on the
master of `spark-submit` when run under it, else on `--master` (default `local[*]`), and stopped
at the end. The engine needs two session settings, set for the run and restored afterwards:
times parse in UTC (as the in-memory reader reads date-times without a zone), and pandas
tables cross to Spark through Arrow.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from malt.errors import ConfigError

SETTINGS = {"spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true"}
DEFAULT_MASTER = "local[*]"

log = logging.getLogger(__name__)


def require_pyspark() -> None:
    """Raise a `ConfigError` saying how to install PySpark when it is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--engine spark needs PySpark, which is not installed: "
                          "pip install 'malt[spark]'") from exc


def require_java() -> None:
    """Raise a `ConfigError` saying what to install when no Java runtime is found."""
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # spark-submit started the JVM already
        return
    home = os.environ.get("JAVA_HOME")
    if (home and os.path.exists(os.path.join(home, "bin", "java"))) or shutil.which("java"):
        return
    raise ConfigError("--engine spark needs a Java runtime (17 or 21) and found none on the "
                      "PATH or in JAVA_HOME: install one (e.g. apt-get install "
                      "openjdk-17-jre-headless) or set JAVA_HOME")


@contextmanager
def spark_session(master: str | None = None) -> Iterator:
    """The session to run on (see the module docstring); `master` only applies to a session
    this call builds."""
    require_pyspark()
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    built = session is None
    if built:
        require_java()
        session = _build(master)
    elif master is not None and session.sparkContext.master != master:
        log.warning("a Spark session on %s is active; --master %s does not apply to it",
                    session.sparkContext.master, master)
    saved = {key: session.conf.get(key, None) for key in SETTINGS}
    for key, value in SETTINGS.items():
        session.conf.set(key, value)
    try:
        yield session
    finally:
        if built:
            session.stop()
        else:
            for key, value in saved.items():
                if value is None:
                    session.conf.unset(key)
                else:
                    session.conf.set(key, value)


def _build(master: str | None):
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    try:
        # Under spark-submit the JVM's configuration names the master; do not override it.
        submitted = SparkConf().contains("spark.master")
    except Exception as exc:  # the JVM did not start: pyspark's own message says why
        raise ConfigError(f"--engine spark could not start the Java side of Spark: {exc}"
                          ) from exc
    builder = SparkSession.builder.appName("malt attribute").config(
        "spark.ui.showConsoleProgress", "false")
    if master is not None or not submitted:
        builder = builder.master(master or DEFAULT_MASTER)
    return builder.getOrCreate()
