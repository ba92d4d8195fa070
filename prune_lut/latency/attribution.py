"""Attributing a per-node profile of a key-named ONNX network to its layer keys.

Build networks name every node ``<key>#<position>`` (``pruning/export.py`` with ``key_names=True``).
Backends rename what they fuse: ONNX Runtime names a fused node after its output tensor, TensorRT
joins fused layer names with `` + ``; both are mapped back here. Nodes that map to one position are
summed (they run one after another); profile names that map to no key (layout reorders) are the
network's unattributed time.
"""
from __future__ import annotations


def _node_maps(model: bytes) -> tuple[dict[str, int], dict[str, int], dict[int, str]]:
    """(node name -> position, output tensor -> position, position -> key) of a key-named ONNX model."""
    import onnx

    m = onnx.load_from_string(model)
    by_name, by_tensor, pos_key = {}, {}, {}
    for n in m.graph.node:
        base = n.name.split("/")[0]
        if "#" not in base:
            continue
        key, pos = base.rsplit("#", 1)
        pos = int(pos)
        pos_key[pos] = key
        by_name[n.name] = pos
        for o in n.output:
            by_tensor[o] = pos
    return by_name, by_tensor, pos_key


def _lookup(name: str, by_name: dict, by_tensor: dict) -> int | None:
    """The position a backend node name stands for (ORT renames fused nodes after their output tensor)."""
    for part in name.split(" + "):  # TensorRT joins fused layer names with " + "
        cand = part
        for _ in range(4):
            if cand in by_name:
                return by_name[cand]
            if cand in by_tensor:
                return by_tensor[cand]
            if "_" not in cand:
                break
            cand = cand.rsplit("_", 1)[0]  # e.g. "stage2.0.expand.out_nchwc"
    return None


def attribute(model: bytes, nodes_ms: dict[str, float], spreads: dict[str, float] | None = None
              ) -> tuple[dict[int, tuple[str, float, float]], float]:
    """Per-position (key, ms, spread ms) from a per-node profile, and the time that maps to no position.

    Nodes that map to one position are summed (they run one after another), as are their spreads.
    """
    by_name, by_tensor, pos_key = _node_maps(model)
    per_pos = {p: [0.0, 0.0] for p in pos_key}
    other = 0.0
    for name, ms in nodes_ms.items():
        p = _lookup(name, by_name, by_tensor)
        if p is None:
            other += ms
        else:
            per_pos[p][0] += ms
            per_pos[p][1] += (spreads or {}).get(name, 0.0)
    return {p: (pos_key[p], ms, sp) for p, (ms, sp) in per_pos.items()}, other
