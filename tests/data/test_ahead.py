import threading

import pytest

from malt.data.ahead import read_ahead


def test_yields_every_item_in_order():
    assert list(read_ahead(iter(range(10)))) == list(range(10))
    assert list(read_ahead(iter([]))) == []


def test_the_next_item_is_produced_while_the_current_one_is_in_use():
    second_made = threading.Event()
    makers = []

    def items():
        yield 0
        makers.append(threading.current_thread().name)
        second_made.set()
        yield 1

    ahead = read_ahead(items(), name="test-ahead")
    assert next(ahead) == 0
    # Nobody has asked for item 1 yet: only a worker working ahead can have made it.
    assert second_made.wait(timeout=30)
    assert makers[0].startswith("test-ahead")
    assert next(ahead) == 1


def test_an_error_of_the_source_is_raised_at_its_place():
    def items():
        yield "a"
        raise ValueError("bad row group")

    ahead = read_ahead(items())
    assert next(ahead) == "a"
    with pytest.raises(ValueError, match="bad row group"):
        next(ahead)


def test_closing_early_stops_production_and_the_worker():
    made = []

    def items():
        for i in range(100):
            made.append(i)
            yield i

    ahead = read_ahead(items(), name="test-close")
    assert next(ahead) == 0
    ahead.close()
    assert made == [0, 1]  # the one handed out and the one in production
    assert not [t for t in threading.enumerate() if t.name.startswith("test-close")]
