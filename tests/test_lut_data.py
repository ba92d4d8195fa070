"""The shipped tables: real provenance, complete coverage, named after their hardware, found by space."""
import pytest

from prune_lut.devices import Device
from prune_lut.latency.lutfile import LUT
from prune_lut.lut_data import find_table, shipped_tables, table_name
from prune_lut.pruning.space import ChannelSpace, get_space

TABLES = shipped_tables()


@pytest.mark.parametrize("path", TABLES, ids=[p.name for p in TABLES])
def test_shipped_table_is_complete_with_provenance(path):
    lut = LUT.load(path)
    space = ChannelSpace.from_description(lut.space)
    assert lut.space_hash == space.hash, "the table must match the space its description rebuilds"
    Device.from_dict(lut.device)  # a valid profile
    p = lut.provenance
    for k in ("host", "cpu", "cores", "onnxruntime", "python", "date", "protocol", "threads", "precision", "method"):
        assert p.get(k) not in (None, ""), k
    assert path.name == table_name(lut)
    assert len(lut.entries) == lut.space["keys"] and lut.extra["build"]["complete"]
    assert lut.reference["median_ms"] > 0 and lut.extra["sum_to_e2e"]["heldout"]["n"] >= 1
    assert find_table(space, lut.device["name"]) is not None


def test_quickstart_table_is_shipped():
    sp = get_space("mobilenet_v2", small_input=True, resolution=8, in_channels=1, num_classes=10, multiple=8)
    assert find_table(sp, "cpu") is not None
    assert find_table(get_space("mobilenet_v2", resolution=224, multiple=8), "cpu") is not None
    assert find_table(sp, "jetson") is None
