"""PruningNet: derived from every family's space, generates exactly the plain network, BN per width."""
import random

import pytest
import torch

from prune_lut.pruning.bn import fold_bn, recalibrate_bn
from prune_lut.pruning.data import DataSplits, TensorImages
from prune_lut.pruning.net import build_net
from prune_lut.pruning.pruningnet import KernelCache, PruningNet, _key
from prune_lut.pruning.scoring import GeneratedNets, evaluate
from prune_lut.pruning.space import Block, get_space


def small_space(family, res=16):
    return get_space(family, resolution=res, num_classes=10, in_channels=1, small_input=True, multiple=8)


@pytest.mark.parametrize("bn", ["choice", "shared"])
def test_every_family_generates_its_plain_network(family, bn):
    sp = small_space(family, 8)
    pn = PruningNet(sp, hidden=1, bn=bn)
    assert set(pn.blocks) == {_key(c.name) for c in sp.convs()}
    for u in sp.units:  # block convs see (input, middle, output) widths; lone convs (input, output)
        if isinstance(u, Block):
            assert all(pn.blocks[_key(c.name)].inputs == (u.cin, u.mid, u.cout) for c in u.body)
    arch = sp.random(random.Random(3))
    x = torch.randn(3, 1, 8, 8)
    pn.eval()
    net = pn.generate(arch)
    plain = build_net(sp, arch)
    for name, m in net.convs.items():
        assert m[0].weight.shape == plain.convs[name][0].weight.shape
    assert torch.allclose(pn(x, arch), net(x), atol=1e-5)
    cache = KernelCache()
    for _ in range(2):  # generated, then from the cache: the same network
        cached = pn.generate(arch, cache)
        assert all(torch.equal(v, cached.state_dict()[k]) for k, v in net.state_dict().items())
    assert cache.hits == cache.misses == len(net.convs)
    folded = fold_bn(pn.generate(arch))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert torch.allclose(folded(x), net(x), atol=1e-4)
    pn.train()
    net.train()
    assert torch.allclose(pn(x, arch), net(x), atol=1e-4)  # batch statistics: same computation


def test_first_conv_sees_fixed_image_ratio_and_width_choice_picks_bn():
    sp = small_space("mobilenet_v1")
    torch.manual_seed(0)  # with few hidden units, an unlucky init can switch every ReLU off for both archs
    pn = PruningNet(sp, hidden=16)
    stem = pn.blocks["stem"]
    a = sp.full()
    b = dict(a, stem=sp.genes["stem"].choices[0])
    assert stem.ratios(a) == [1.0, 1.0] and stem.ratios(b)[0] == 1.0 and stem.ratios(b)[1] < 1
    assert stem.choice[a["stem"]] != stem.choice[b["stem"]]
    with torch.no_grad():
        stem.bn_bias[stem.choice[b["stem"]]].fill_(0.5)
    assert torch.all(pn.generate(b).convs["stem"][1].bias == 0.5)
    assert torch.all(pn.generate(a).convs["stem"][1].bias == 0.0)
    # weights differ per arch (generated), not just cropped copies
    wa = pn.generate(a).convs["stem"][0].weight[: b["stem"]]
    wb = pn.generate(b).convs["stem"][0].weight
    assert not torch.allclose(wa, wb)


def test_shared_batchnorm_is_one_row_cropped_for_every_width():
    sp = small_space("mobilenet_v1")
    pn = PruningNet(sp, hidden=4, bn="shared")
    stem = pn.blocks["stem"]
    assert stem.bn_weight.shape[0] == 1 and set(stem.choice.values()) == {0}
    with torch.no_grad():
        stem.bn_bias[0, :4].fill_(0.5)
    narrow = dict(sp.full(), stem=sp.genes["stem"].choices[0])
    assert torch.all(pn.generate(narrow).convs["stem"][1].bias[:4] == 0.5)  # the same row, cropped
    assert torch.all(pn.generate(sp.full()).convs["stem"][1].bias[:4] == 0.5)
    with pytest.raises(ValueError, match="bn must be one of"):
        PruningNet(sp, bn="per-arch")


def test_no_dead_kernels_at_init_every_block_gets_gradient():
    sp = small_space("mobilenet_v2", 8)
    pn = PruningNet(sp, hidden=2).train()  # hidden=2: all-off ReLUs are likely for some block
    for seed in range(3):
        pn.zero_grad()
        arch = sp.random(random.Random(seed))
        y = torch.randint(0, 10, (16,))
        torch.nn.functional.cross_entropy(pn(torch.randn(16, 1, 8, 8), arch), y).backward()
        dead = [n for n, b in pn.blocks.items() if b.fc2.bias.grad.abs().sum() == 0]
        assert not dead


def test_kernel_cache_stays_within_its_size():
    cache = KernelCache(max_bytes=1000)
    for i in range(50):
        t = cache.get(("conv", i), lambda: torch.zeros(100))  # 400 bytes each
        assert cache.get(("conv", i), lambda: None) is t
    assert cache.bytes <= 1000 and cache.misses == 50 and cache.hits == 50
    assert cache.get(("conv", 49), lambda: None) is not None  # the most recent survive


def test_scored_accuracy_is_the_exported_networks():
    """The fitness scores a folded, channels-last copy for speed: it must score what export writes."""
    sp = small_space("mobilenet_v2", 8)
    torch.manual_seed(0)
    pn = PruningNet(sp, hidden=8)
    gen = torch.Generator().manual_seed(0)
    imgs = lambda n: TensorImages(torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen))  # noqa: E731
    data = DataSplits("random", imgs(64), imgs(300), imgs(10), 10, 1, 8)
    nets = GeneratedNets(pn, data, recal_batches=2, batch_size=32)
    for arch in (sp.full(), sp.smallest(), sp.random(random.Random(1))):
        assert nets.accuracy(arch) == evaluate(nets.network(arch), data.val)
    assert set(nets.times) == {"generate", "recalibrate", "evaluate"}


def test_recalibrate_bn_sets_cumulative_statistics():
    sp = small_space("mobilenet_v2", 8)
    net = build_net(sp, sp.uniform(0.5))
    xs = [torch.randn(8, 1, 8, 8) * 3 + 1 for _ in range(4)]
    recalibrate_bn(net, iter([(x, None) for x in xs]), num_batches=3)
    assert not net.training
    bn = net.convs["stem"][1]
    conv = net.convs["stem"][0]
    with torch.no_grad():
        acts = torch.cat([conv(x) for x in xs[:3]])
    assert torch.allclose(bn.running_mean, acts.mean(dim=(0, 2, 3)), atol=1e-4)
    assert bn.momentum == 0.1  # restored


@pytest.mark.parametrize("hidden", [1, 8])
def test_hidden_option_sets_mlp_size(hidden):
    pn = PruningNet(small_space("mobilenet_v2", 8), hidden=hidden)
    assert all(b.fc1.out_features == hidden for b in pn.blocks.values())
