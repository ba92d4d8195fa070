"""Training: PruningNet meta-training and plain retraining, one loop, resumable checkpoints.

``checkpoint`` (the file format), ``sampler`` (the archs of each PruningNet step), ``loop`` (the
shared loop), ``recipes`` (the two runs and their data).
"""
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .loop import DEFAULTS, TrainResult, make_sgd
from .recipes import (TRAINING_RULE, VAL_RECAL_BATCHES, check_space_data, data_for, init_from_pruningnet,
                      plain_param_groups, resume_checkpoint, space_for_data, train_plain, train_pruningnet)
from .sampler import DRAWS, RULES, ArchSampler

__all__ = ["DRAWS", "ArchSampler", "Checkpoint", "DEFAULTS", "RULES", "TRAINING_RULE", "TrainResult", "VAL_RECAL_BATCHES",
           "check_space_data", "data_for", "init_from_pruningnet", "load_checkpoint", "make_sgd",
           "plain_param_groups", "resume_checkpoint", "save_checkpoint", "space_for_data", "train_plain",
           "train_pruningnet"]
