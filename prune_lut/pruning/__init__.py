"""The MetaPruning plugin: channel spaces, pruned nets, PruningNet, training, search, export."""
