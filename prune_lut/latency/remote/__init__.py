"""Measure on a remote board over SSH, with nothing installed there.

``ssh`` (the command, its options and the bootstrap), ``board`` (one board's worker over one ssh
connection), ``boards`` (several identical boards behind one meter). The board needs Python 3
with numpy and the backend's runtime.
"""
from . import ssh
from .board import RUNTIME_FIELD, RemoteWorker
from .boards import Boards, RemoteMeter, as_boards, encode_model
from .ssh import (BOOTSTRAP, MAX_SOURCE, WORKER_PATH, RemoteError, SSHOptions, check_host, remote_command,
                  use_ssh_options, worker_sha256, worker_source)

__all__ = ["BOOTSTRAP", "Boards", "MAX_SOURCE", "RUNTIME_FIELD", "RemoteError", "RemoteMeter", "RemoteWorker",
           "SSHOptions", "WORKER_PATH", "as_boards", "check_host", "encode_model", "remote_command", "ssh",
           "use_ssh_options", "worker_sha256", "worker_source"]
