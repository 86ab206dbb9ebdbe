"""One item ahead: the next item of an iterator is produced in a worker thread while the caller
works on the current one.

numpy copies, pyarrow decoding and torch operators release the GIL, so assembling the next
batch (or converting the next row group) overlaps the current training or scoring step. At most
two items are alive at a time: the one handed out and the one being produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T], name: str = "malt-ahead") -> Iterator[T]:
    """The items of `items`, in order, each produced in a worker thread (named `name`) while
    the previous one is in use. An exception of `items` is raised where its item would have
    been yielded. Closing the generator waits for the item in production and drops it."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending = pool.submit(next, items, _END)
        while True:
            item = pending.result()
            if item is _END:
                return
            pending = pool.submit(next, items, _END)
            yield item
