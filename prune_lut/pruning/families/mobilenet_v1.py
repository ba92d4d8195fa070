"""MobileNetV1 (Howard et al. 2017): 569 M MACs, 4.2 M params at 224, 1000 classes.

Genes: one per conv output width (the stem and the 13 pointwise convs); each depthwise conv
keeps its input's width, as in MetaPruning's MobileNetV1 space.
"""
from ..space import Conv, Head, register_family

# (pointwise output width, stride of the depthwise conv before it)
LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


@register_family("mobilenet_v1", "MobileNetV1 1.0 (paper: 569 M MACs, 4.2 M params at 224)")
def build(num_classes: int, in_channels: int, small_input: bool):
    genes = {"stem": (32, "layer")}
    units = [Conv("stem", in_channels, "stem", 3, 1 if small_input else 2)]
    prev = "stem"
    first_s2 = True
    for i, (width, stride) in enumerate(LAYERS, start=1):
        if small_input and stride == 2 and first_s2:  # small inputs skip the stem's and this stride
            stride, first_s2 = 1, False
        gene = f"pw{i}"
        genes[gene] = (width, "layer")
        units.append(Conv(f"dw{i}", prev, prev, 3, stride, depthwise=True))
        units.append(Conv(gene, prev, gene, 1))
        prev = gene
    units.append(Head("head", prev, num_classes))
    return tuple(units), genes
