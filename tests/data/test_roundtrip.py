import numpy as np
import pyarrow.parquet as pq

from malt.data import MAC, prepare


def test_prepare_round_trips_every_column(random_mac):
    dataset = prepare(random_mac)
    assert [d.name for d in dataset.train] == ["train-00", "train-01"]
    assert [d.name for d in dataset.test] == ["test"]
    for day in dataset.days:
        table = pq.read_table(day.source)
        arrays = day.arrays()
        # Dense vocab "i" -> i, so mapped rows equal the raw ids.
        for j, f in enumerate(MAC.fields):
            np.testing.assert_array_equal(arrays["sparse"][:, j], table[f.name].to_numpy())
        np.testing.assert_array_equal(arrays["user"], table["user_id"].to_numpy())
        for j, s in enumerate(MAC.id_sequences):
            np.testing.assert_array_equal(arrays["seq"][:, j, :],
                                          np.stack(table[s.name].to_numpy(zero_copy_only=False)))
        for j, s in enumerate(MAC.float_sequences):
            np.testing.assert_allclose(arrays["dense_seq"][:, j, :],
                                       np.stack(table[s.name].to_numpy(zero_copy_only=False)))
        for j, label in enumerate(MAC.labels):
            np.testing.assert_allclose(arrays["weights"][:, j], table[label].to_numpy())
