"""PruningNet (MetaPruning, Liu et al. ICCV 2019): one network that generates the weights of any arch.

Derived from the channel space's units, never written per family: every conv of the space gets a
:class:`PruningBlock`, a two-layer MLP fed with the normalized widths that shape that conv (a
block's input, middle and output width; a lone conv's input and output width; a fixed width such
as the image's channels counts as ratio 1.0). Its output is reshaped to the full-size kernel and
cropped to the arch's input and output channels. Residual stages share one gene in the space, so
shortcuts always line up.

BatchNorm: as in the reference code, each conv keeps one BatchNorm per choice of its output width
(running statistics *and* affine scale/shift per choice; the reference keeps statistics only,
``affine=False``), ``bn="choice"``; or one BatchNorm per conv shared by every width, cropped like the
kernel (``bn="shared"``, as slimmable networks' switchable BN does not): every step then trains the
scale/shift every arch uses, and the statistics are recalibrated per arch before scoring anyway.
An arch's network takes the BatchNorm of its chosen width. During torchrun
training the batch statistics are summed over all processes (see ``distributed.sync_batch_stats``)
so that N processes train exactly what one process would.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .net import PrunedNet, build_net
from .space import Block, ChannelSpace, Conv, Head, MaxPool, Ref

BN_EPS = 1e-5
BN_MODES = ("choice", "shared")
BN_MOMENTUM = 0.1


def _key(name: str) -> str:
    return name.replace(".", "_")  # ModuleDict keys may not contain dots


def _act(x: torch.Tensor, act: str) -> torch.Tensor:
    """In place, as the plain network's activations: ``x`` is always a fresh BatchNorm or sum output."""
    if act == "relu":
        return F.relu(x, inplace=True)
    if act == "relu6":
        return F.relu6(x, inplace=True)
    return x


class PruningBlock(nn.Module):
    """Generates one conv's weight from the widths that shape it, plus its per-width BatchNorms."""

    def __init__(self, space: ChannelSpace, conv: Conv, inputs: tuple[Ref, ...], hidden: int, bn: str = "choice"):
        super().__init__()
        self.conv, self.inputs = conv, inputs
        self.bases = tuple(space.genes[r].base if isinstance(r, str) else r for r in inputs)
        cin = space.genes[conv.cin].base if isinstance(conv.cin, str) else conv.cin
        cout = space.genes[conv.cout].base if isinstance(conv.cout, str) else conv.cout
        self.shape = (cout, 1 if conv.depthwise else cin, conv.kernel, conv.kernel)
        self.fc1 = nn.Linear(len(inputs), hidden)
        self.fc2 = nn.Linear(hidden, math.prod(self.shape))
        widths = space.genes[conv.cout].choices if isinstance(conv.cout, str) else (conv.cout,)
        # the BatchNorm row each output width uses: its own (bn="choice"), or one for all, cropped ("shared")
        self.choice = {w: (i if bn == "choice" else 0) for i, w in enumerate(widths)}
        rows = len(widths) if bn == "choice" else 1
        self.bn_weight = nn.Parameter(torch.ones(rows, cout))
        self.bn_bias = nn.Parameter(torch.zeros(rows, cout))
        self.register_buffer("running_mean", torch.zeros(rows, cout))
        self.register_buffer("running_var", torch.ones(rows, cout))
        self._init_scale(space)

    @torch.no_grad()
    def _init_scale(self, space: ChannelSpace) -> None:
        """Start the generated kernels at the plain network's initial scale (Kaiming, fan-out).

        With PyTorch's default init of ``fc2`` the kernels come out roughly ten times larger than
        a plain conv's; BatchNorm makes the conv scale-invariant, so that shrinks the effective
        learning rate ~100-fold and the PruningNet barely trains (measured on digits: chance
        accuracy after two epochs). Scaling ``fc2`` by the hidden activations' size fixes it. A hidden
        layer whose ReLUs are all off for an arch would generate an all-zero (dead) kernel, so the
        bias carries a Kaiming kernel of its own.
        """
        fan_out = self.shape[0] * self.shape[2] * self.shape[3]
        target = math.sqrt(2.0 / fan_out)
        probe = torch.tensor([[1.0] * len(self.inputs),
                              [(space.genes[r].choices[0] if isinstance(r, str) else r) / b
                               for r, b in zip(self.inputs, self.bases)]])
        h2 = F.relu(self.fc1(probe)).pow(2).sum(1).mean().item()
        # half the variance from the bias (a plain Kaiming kernel, alive even where every hidden
        # unit is off for some widths), half from the width-dependent part
        nn.init.normal_(self.fc2.weight, 0.0, target / math.sqrt(2 * max(h2, 1e-3)))
        nn.init.normal_(self.fc2.bias, 0.0, target / math.sqrt(2))

    def ratios(self, arch: dict[str, int]) -> list[float]:
        return [(arch[r] if isinstance(r, str) else r) / b for r, b in zip(self.inputs, self.bases)]

    def kernels(self, archs: list[dict[str, int]]) -> torch.Tensor:
        """The full-size generated kernels (len(archs), *shape), one MLP pass for all archs: the
        generator's weights are read once per step, not once per arch (they dominate a step's
        memory traffic on small inputs)."""
        feats = torch.tensor([self.ratios(a) for a in archs], dtype=self.fc1.weight.dtype,
                             device=self.fc1.weight.device)
        return self.fc2(F.relu(self.fc1(feats))).view(len(archs), *self.shape)

    def crop(self, kernel: torch.Tensor, cin: int, cout: int) -> torch.Tensor:
        """A full-size kernel cut to the arch's channels."""
        return kernel[:cout] if self.conv.depthwise else kernel[:cout, :cin]

    def weight(self, arch: dict[str, int], cin: int, cout: int) -> torch.Tensor:
        """The generated kernel (cout, cin or 1, k, k) for ``arch``."""
        return self.crop(self.kernels([arch])[0], cin, cout)

    def forward(self, x: torch.Tensor, kernel: torch.Tensor, cin: int, cout: int, sync: bool = False) -> torch.Tensor:
        """Conv with ``kernel`` (full size, from :meth:`kernels`) cropped, then this width's BatchNorm."""
        c = self.conv
        y = F.conv2d(x, self.crop(kernel, cin, cout), None, c.stride, c.kernel // 2, 1, cin if c.depthwise else 1)
        i = self.choice[cout]
        w, b = self.bn_weight[i, :cout], self.bn_bias[i, :cout]
        rm, rv = self.running_mean[i, :cout], self.running_var[i, :cout]  # views: updated in place
        if self.training and sync:
            from .distributed import sync_batch_stats

            mean, var, n = sync_batch_stats(y)
            with torch.no_grad():
                rm.mul_(1 - BN_MOMENTUM).add_(mean.detach(), alpha=BN_MOMENTUM)
                rv.mul_(1 - BN_MOMENTUM).add_(var.detach() * (n / max(n - 1, 1)), alpha=BN_MOMENTUM)
            scale = w * torch.rsqrt(var + BN_EPS)
            y = y * scale.view(1, -1, 1, 1) + (b - mean * scale).view(1, -1, 1, 1)
        else:
            y = F.batch_norm(y, rm, rv, w, b, self.training, BN_MOMENTUM, BN_EPS)
        return _act(y, c.act)


class KernelCache:
    """Generated kernels by (conv, the widths that shape it), the least recently used dropped past
    ``max_bytes``. Archs a search compares share most of their widths, so most kernels repeat. Valid
    only while the PruningNet's weights are fixed (a search, an export), never across training steps."""

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes, self.bytes, self.hits, self.misses = max_bytes, 0, 0, 0
        self._kernels: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def get(self, key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        t = self._kernels.get(key)
        if t is not None:
            self._kernels.move_to_end(key)
            self.hits += 1
            return t
        self.misses += 1
        self._kernels[key] = t = make()
        self.bytes += t.numel() * t.element_size()
        while self.bytes > self.max_bytes and len(self._kernels) > 1:
            _, old = self._kernels.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
        return t


class PruningNet(nn.Module):
    """Meta network over ``space``: ``forward(x, arch)`` trains it, ``generate(arch)`` emits a PrunedNet."""

    def __init__(self, space: ChannelSpace, hidden: int = 32, bn: str = "choice"):
        super().__init__()
        if bn not in BN_MODES:
            raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
        self.space, self.hidden, self.bn = space, hidden, bn
        self.sync_bn = False  # set by the trainer when several processes share each batch
        blocks: dict[str, PruningBlock] = {}
        self.head: Head | None = None
        for u in space.units:
            if isinstance(u, Conv):
                blocks[_key(u.name)] = PruningBlock(space, u, (u.cin, u.cout), hidden, bn)
            elif isinstance(u, Block):
                feats = (u.cin, u.mid, u.cout) if u.mid is not None else (u.cin, u.cout)
                for c in u.body + ((u.shortcut,) if u.shortcut is not None else ()):
                    blocks[_key(c.name)] = PruningBlock(space, c, feats, hidden, bn)
            elif isinstance(u, Head):
                self.head = u
        self.blocks = nn.ModuleDict(blocks)
        assert self.head is not None, "a space must end in a Head"
        base = space.genes[self.head.cin].base if isinstance(self.head.cin, str) else self.head.cin
        self.classifier = nn.Linear(base, self.head.num_classes)

    def forward(self, x: torch.Tensor, arch: dict[str, int] | list[dict[str, int]]):
        """Logits of the network for ``arch`` on ``x`` (its weights generated on the fly); given a
        list of archs, the list of their logits on the same batch, their kernels generated together
        (:meth:`PruningBlock.kernels`)."""
        archs = arch if isinstance(arch, list) else [arch]
        kernels = {k: blk.kernels(archs) for k, blk in self.blocks.items()}
        out = [self._forward(x, a, {k: v[i] for k, v in kernels.items()}) for i, a in enumerate(archs)]
        return out if isinstance(arch, list) else out[0]

    def _conv(self, c: Conv, x: torch.Tensor, arch: dict[str, int], kernels: dict) -> torch.Tensor:
        w = self.space.width
        key = _key(c.name)
        return self.blocks[key](x, kernels[key], w(c.cin, arch), w(c.cout, arch), self.sync_bn)

    def _forward(self, x: torch.Tensor, arch: dict[str, int], kernels: dict) -> torch.Tensor:
        for u in self.space.units:
            if isinstance(u, Conv):
                x = self._conv(u, x, arch, kernels)
            elif isinstance(u, Block):
                y = x
                for c in u.body:
                    y = self._conv(c, y, arch, kernels)
                if u.residual:
                    y = _act(y + (x if u.shortcut is None else self._conv(u.shortcut, x, arch, kernels)), u.act)
                x = y
            elif isinstance(u, MaxPool):
                x = F.max_pool2d(x, u.kernel, u.stride, u.kernel // 2)
            elif isinstance(u, Head):
                x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
                cin = self.space.width(u.cin, arch)
                x = F.linear(x, self.classifier.weight[:, :cin], self.classifier.bias)
        return x

    @torch.no_grad()
    def generate(self, arch: dict[str, int], cache: KernelCache | None = None) -> PrunedNet:
        """The plain network for ``arch`` holding the generated weights and that width's BatchNorm
        (running statistics included; recalibrate them for the arch before trusting its accuracy).
        ``cache`` reuses kernels already generated for the same widths (while the weights are fixed)."""
        arch = self.space.check_arch(arch)
        net = build_net(self.space, arch).to(self.classifier.weight.device)
        w = self.space.width
        for name, m in net.convs.items():
            blk = self.blocks[_key(name)]
            conv, bn = m[0], m[1]
            cin, cout = w(blk.conv.cin, arch), w(blk.conv.cout, arch)
            if cache is None:
                conv.weight.copy_(blk.weight(arch, cin, cout))
            else:
                key = (name, tuple(blk.ratios(arch)), cin, cout)
                conv.weight.copy_(cache.get(key, lambda: blk.weight(arch, cin, cout).clone()))
            i = blk.choice[cout]
            bn.weight.copy_(blk.bn_weight[i, :cout])
            bn.bias.copy_(blk.bn_bias[i, :cout])
            bn.running_mean.copy_(blk.running_mean[i, :cout])
            bn.running_var.copy_(blk.running_var[i, :cout])
            bn.eps, bn.momentum = BN_EPS, BN_MOMENTUM
        cin = w(self.head.cin, arch)
        net.classifier.weight.copy_(self.classifier.weight[:, :cin])
        net.classifier.bias.copy_(self.classifier.bias)
        return net.eval()

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer groups: weight decay on the PruningBlocks' MLP weights and the classifier weight,
        none on biases and BatchNorm scale/shift."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (decay if name.endswith(".weight") and "bn_" not in name else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
