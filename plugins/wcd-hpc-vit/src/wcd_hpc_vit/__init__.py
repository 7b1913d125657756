"""wcd-hpc-vit: a Vision Transformer model plugin for wcd-hpc (hooks in ``wcd_hpc_vit.model``)."""

__version__ = "0.1.0"
