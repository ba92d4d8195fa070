"""Model families. Importing this package registers each one (one module per family)."""
from . import mobilenet_v1, mobilenet_v2, mobilenet_v2_metapruning, resnet  # noqa: F401
