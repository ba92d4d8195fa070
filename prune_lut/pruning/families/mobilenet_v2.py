"""MobileNetV2 (Sandler et al. 2018), the layer shapes of torchvision's ``mobilenet_v2``.

Genes as in MetaPruning: the stem, one output width per stage (shared by the stage's blocks,
so residual adds stay valid), one middle (expanded) width per block, and the last 1x1 conv.
"""
from ..space import Block, Conv, Head, register_family

# expansion t, output width c, blocks n, first stride s (torchvision's inverted_residual_setting)
SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


@register_family("mobilenet_v2", "MobileNetV2 1.0 (torchvision mobilenet_v2: 3,504,872 params)",
                 reference="mobilenet_v2")
def build(num_classes: int, in_channels: int, small_input: bool):
    genes = {"stem": (32, "stage")}
    units = [Conv("stem", in_channels, "stem", 3, 1 if small_input else 2, act="relu6")]
    prev, prev_base = "stem", 32
    for si, (t, c, n, s) in enumerate(SETTING, start=1):
        if small_input and si == 2:  # small inputs drop the stem's and the first stage's downsampling
            s = 1
        stage = f"stage{si}"
        genes[stage] = (c, "stage")
        for j in range(n):
            name = f"{stage}.{j}"
            stride = s if j == 0 else 1
            if t == 1:  # no expansion: the depthwise conv runs on the block input's width
                mid = prev
                body = (Conv(f"{name}.dw", prev, prev, 3, stride, depthwise=True, act="relu6"),)
            else:
                mid = f"{name}.mid"
                genes[mid] = (prev_base * t, "mid")
                body = (Conv(f"{name}.expand", prev, mid, 1, act="relu6"),
                        Conv(f"{name}.dw", mid, mid, 3, stride, depthwise=True, act="relu6"))
            body += (Conv(f"{name}.project", mid, stage, 1, act="none"),)
            units.append(Block(name, body, residual=j > 0, mid=mid))
            prev, prev_base = stage, c
    genes["last"] = (1280, "layer")
    units.append(Conv("last", prev, "last", 1, act="relu6"))
    units.append(Head("head", "last", num_classes))
    return tuple(units), genes
