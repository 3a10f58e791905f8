"""Without CUDA, Triton kernels run under its interpreter on CPU; this must be set
before triton is first imported."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
