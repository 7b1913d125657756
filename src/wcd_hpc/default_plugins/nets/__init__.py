"""The torch modules of the built-in models.

The model plugins (:mod:`wcd_hpc.default_plugins.lenet` …) import these only inside ``build``:
registering a plugin must not import torch, so that ``wcd-hpc sweep`` validates and submits on a
login node without paying for it (about 0.7 s of CPU per command).
"""
