"""bnlab's domain: job spec, settings, storage, queue configuration and comparison maths (torch-free).

`core.ml` is the PyTorch training core and the only package that imports torch.
"""
