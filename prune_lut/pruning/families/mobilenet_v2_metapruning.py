"""MobileNetV2 as MetaPruning searches it (liuzechun/MetaPruning, ``mobilenetv2/``): about 1.4x
torchvision's widths, 569.5 M MACs at 224.

Its differences from ``mobilenet_v2``: stage widths 44 (stem), 22, 33, 44, 88, 132, 224, 448;
the first block keeps a 1x1 expansion conv whose middle width is a gene of base 44 (1x the stem);
the last 1x1 conv is fixed at 1280 (not a gene); the residual adds are those of the PruningNet
(every block but a stage's first). Its archs use MetaPruning's ``floor`` grid
(``get_space("mobilenet_v2_metapruning", rounding="floor")``) to match the reference's widths.
"""
from ..space import register_family
from .mobilenet_v2 import inverted_residuals

# expansion t, output width c, blocks n, first stride s (the reference's stage_out_channel and strides)
SETTING = [(1, 22, 1, 1), (6, 33, 2, 2), (6, 44, 3, 2), (6, 88, 4, 2), (6, 132, 3, 1), (6, 224, 3, 2), (6, 448, 1, 1)]


@register_family("mobilenet_v2_metapruning", "MobileNetV2 of MetaPruning's reference code (1.4x widths, 569.5 M MACs)")
def build(num_classes: int, in_channels: int, small_input: bool):
    return inverted_residuals(SETTING, 44, 1280, num_classes, in_channels, small_input,
                              last_gene=False, expand_t1=True)
