"""An arch of a space as the latency side measures it: ONNX bytes, or a key-named build network."""
from __future__ import annotations

import hashlib

from ..latency.build import Network
from ..pruning.space import ChannelSpace


def onnx_bytes(space: ChannelSpace, arch: dict[str, int], batch: int | str = "batch", key_names: bool = False) -> bytes:
    """The pruned network of ``arch`` (fresh weights, eval mode: latency does not depend on them) as ONNX."""
    import torch

    from ..pruning.export import onnx_model
    from ..pruning.net import build_net

    with torch.no_grad():
        return onnx_model(space, build_net(space, arch).eval(), batch=batch, key_names=key_names).SerializeToString()


def arch_id(space: ChannelSpace, arch: dict[str, int]) -> str:
    return hashlib.sha1(repr(space.vector(arch)).encode()).hexdigest()[:12]


def space_network(space: ChannelSpace, arch: dict[str, int], batch: int = 1) -> Network:
    """A build :class:`~prune_lut.latency.build.Network` for ``arch``: its keys in order and key-named
    ONNX made on demand."""
    return Network(arch_id(space, arch), [s.key for s in space.layer_specs(arch)],
                   lambda: onnx_bytes(space, arch, batch=batch, key_names=True))
