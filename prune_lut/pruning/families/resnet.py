"""ResNet (He et al. 2016), torchvision's v1.5 layer shapes (stride on the 3x3 conv).

Genes as in MetaPruning: one output width per stage (shared by every block of the stage and
its shortcut) and the middle width of each block (BasicBlock: conv1's output; Bottleneck:
conv1's and conv2's output). ResNet-18/34's first stage adds the stem's output unchanged, so the
stem shares that stage's gene; ResNet-50/101 project it, so their stem has its own gene.
"""
from ..space import Block, Conv, Head, MaxPool, register_family

WIDTHS = (64, 128, 256, 512)


def _build(depths, bottleneck: bool, num_classes: int, in_channels: int, small_input: bool):
    expansion = 4 if bottleneck else 1
    genes: dict = {}
    stem = "stem" if bottleneck else "stage1"
    genes[stem] = (64, "stage")
    if small_input:  # CIFAR-style stem: 3x3, stride 1, no max-pool
        units = [Conv("stem", in_channels, stem, 3, 1)]
    else:
        units = [Conv("stem", in_channels, stem, 7, 2), MaxPool("maxpool", 3, 2)]
    prev, prev_base = stem, 64
    for si, (planes, n) in enumerate(zip(WIDTHS, depths), start=1):
        stage, out_base = f"stage{si}", planes * expansion
        genes[stage] = (out_base, "stage")
        for j in range(n):
            name, stride = f"{stage}.{j}", (2 if si > 1 and j == 0 else 1)
            mid = f"{name}.mid"
            genes[mid] = (planes, "mid")
            if bottleneck:
                body = (Conv(f"{name}.conv1", prev, mid, 1),
                        Conv(f"{name}.conv2", mid, mid, 3, stride),
                        Conv(f"{name}.conv3", mid, stage, 1, act="none"))
            else:
                body = (Conv(f"{name}.conv1", prev, mid, 3, stride),
                        Conv(f"{name}.conv2", mid, stage, 3, act="none"))
            # torchvision adds a projection wherever the stride or the base width changes
            short = None
            if stride != 1 or prev_base != out_base:
                short = Conv(f"{name}.downsample", prev, stage, 1, stride, act="none")
            units.append(Block(name, body, short, residual=True, act="relu", mid=mid))
            prev, prev_base = stage, out_base
    units.append(Head("head", prev, num_classes))
    return tuple(units), genes


def _register(name: str, depths, bottleneck: bool, params: str):
    def build(num_classes: int, in_channels: int, small_input: bool):
        return _build(depths, bottleneck, num_classes, in_channels, small_input)

    register_family(name, f"ResNet-{name[6:]} (torchvision {name}: {params} params)", reference=name)(build)


_register("resnet18", (2, 2, 2, 2), False, "11,689,512")
_register("resnet34", (3, 4, 6, 3), False, "21,797,672")
_register("resnet50", (3, 4, 6, 3), True, "25,557,032")
_register("resnet101", (3, 4, 23, 3), True, "44,549,160")
