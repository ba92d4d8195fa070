"""MobileNetV2 (Sandler et al. 2018), the layer shapes of torchvision's ``mobilenet_v2``.

Genes as in MetaPruning: the stem, one output width per stage (shared by the stage's blocks,
so residual adds stay valid), one middle (expanded) width per block, and the last 1x1 conv.
:func:`inverted_residuals` builds any member of this shape family (``mobilenet_v2_metapruning``
uses it with MetaPruning's widths).
"""
from ..space import Block, Conv, Head, register_family

# expansion t, output width c, blocks n, first stride s (torchvision's inverted_residual_setting)
SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def inverted_residuals(setting, stem: int, last: int, num_classes: int, in_channels: int, small_input: bool,
                       last_gene: bool = True, expand_t1: bool = False):
    """Units and genes of a MobileNetV2 with ``setting`` (t, c, n, s) rows, a ``stem``-wide 3x3 stem and
    a ``last``-wide 1x1 conv before the head (a gene, or fixed when not ``last_gene``).

    A t = 1 block has no expansion conv (torchvision) unless ``expand_t1``: then it keeps a 1x1
    conv to a middle width of its own (MetaPruning's first block, middle base = its input's base).
    """
    genes = {"stem": (stem, "stage")}
    units = [Conv("stem", in_channels, "stem", 3, 1 if small_input else 2, act="relu6")]
    prev, prev_base = "stem", stem
    for si, (t, c, n, s) in enumerate(setting, start=1):
        if small_input and si == 2:  # small inputs drop the stem's and the first stage's downsampling
            s = 1
        stage = f"stage{si}"
        genes[stage] = (c, "stage")
        for j in range(n):
            name = f"{stage}.{j}"
            stride = s if j == 0 else 1
            if t == 1 and not expand_t1:  # no expansion: the depthwise conv runs on the block input's width
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
    out = last
    if last_gene:
        genes["last"] = (last, "layer")
        out = "last"
    units.append(Conv("last", prev, out, 1, act="relu6"))
    units.append(Head("head", out, num_classes))
    return tuple(units), genes


@register_family("mobilenet_v2", "MobileNetV2 1.0 (torchvision mobilenet_v2: 3,504,872 params)",
                 reference="mobilenet_v2")
def build(num_classes: int, in_channels: int, small_input: bool):
    return inverted_residuals(SETTING, 32, 1280, num_classes, in_channels, small_input)
