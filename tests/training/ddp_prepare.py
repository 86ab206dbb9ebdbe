"""Open data sets the way a distributed run does, recording what each rank did (for
test_multi_node.py; run by torchrun):

    python -m torch.distributed.run ... tests/training/ddp_prepare.py OUT DATA...

Each rank writes OUT/rank-<RANK>.json: for every DATA directory in turn, the days it converted
itself (`Day.built`), the files it hashed, the chunks it converted, whether it ran `prepare`
(or only opened the cache), and the error it raised (the
others are opened even after one fails, so every rank must have come back from the failure).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from malt.data import cache, reader
from malt.errors import MaltError
from malt.runs.config import DataConfig
from malt.training.builder import open_dataset
from malt.training.distributed import init_world


def main(out: Path, paths: list[str]) -> None:
    hashed: list[str] = []
    converted: list[str] = []
    prepared: list[Path] = []
    compute, convert = cache.ContentHashes.compute, reader.DayConverter.convert
    prepare = cache.Preparer.prepare
    cache.ContentHashes.compute = staticmethod(lambda f: hashed.append(str(f)) or compute(f))

    def preparing(self, progress=None):
        prepared.append(self.cache_dir)
        return prepare(self, progress)

    cache.Preparer.prepare = preparing

    def counting(self, chunk, offset, file, out_arrays, pool=None):
        converted.append(file)
        return convert(self, chunk, offset, file, out_arrays, pool)

    reader.DayConverter.convert = counting
    world = init_world("cpu")
    results = []
    for path in paths:
        hashed.clear()
        converted.clear()
        prepared.clear()
        result: dict = {}
        try:
            dataset = open_dataset(DataConfig(path=path), world)
            result["built"] = [d.built for d in dataset.days]
            result["directories"] = [str(d.directory) for d in dataset.days]
            result["users"] = [int(d.arrays()["user"].sum()) for d in dataset.days]
        except MaltError as error:
            result["error"] = str(error)
        results.append({**result, "hashed": list(hashed), "converted": len(converted),
                        "prepared": len(prepared)})
    record = {"rank": world.rank, "local_rank": world.local_rank, "results": results}
    (out / f"rank-{world.rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
