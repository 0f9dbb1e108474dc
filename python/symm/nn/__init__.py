"""Equivariant modules: torch.nn.Modules written in Python on the operators of symm's C++ core.

Each module owns its Parameters (state dict keys as the C++ module's) and its constants as non-persistent
buffers; forwards call ``torch.ops.symm`` operators, torch functions and child modules, so hooks,
parametrize, functional_call, deepcopy, pickle, torch.func, torch.compile and torch.export work on them.
The C++ modules stay available as ``symm._C.eLinear`` etc.
"""
from .activation import check_activation
from .additive_attention import eAdditivePosMultiheadAttention, eAdditiveRelMultiheadAttention
from .affine import eAffine
from .cond_regressor import CondTransformerRegressor, eCondTransformerRegressor
from .attention import AttentionBase, eMultiheadAttention
from .batchnorm import eBatchNorm1d
from .conv import eConv1d, eConvTranspose1d
from .decoder_layer import eTransformerDecoderLayer
from .disentangled import Change2DisentangledBasis
from .distributions import eMultivariateNormal
from .encoder import eTransformerEncoder
from .encoder_layer import eTransformerEncoderLayer
from .feedforward import eFeedForward
from .linear import InvariantBias, eLinear
from .mlp import eMLP, iMLP
from .module import InputError, eModule
from .normalization import eLayerNorm, eRMSNorm
from .pooling import IrrepSubspaceNormPooling
from .running_stats import EMAStats, eEMAStats
from .positional import ALiBiAttention, PositionalAttentionBase, RotaryAttention
from .time_cnn import MLP, TimeCNNEncoder, eTimeCNNEncoder
from .unet import (ConditionalResidualBlock1D, ConditionalUnet1D, Conv1dBlock, Downsample1d, SinusoidalPosEmb,
                   Upsample1d, eConditionalResidualBlock1D, eConditionalUnet1D)

__all__ = [
    "eModule", "eLinear", "InvariantBias", "eAffine", "eRMSNorm", "eLayerNorm", "AttentionBase", "eMultiheadAttention",
    "PositionalAttentionBase", "RotaryAttention", "ALiBiAttention", "eFeedForward", "eTransformerEncoderLayer",
    "eTransformerEncoder", "eTransformerDecoderLayer", "check_activation", "eMLP", "iMLP", "eCondTransformerRegressor",
    "CondTransformerRegressor", "eConv1d", "eConvTranspose1d", "eBatchNorm1d", "IrrepSubspaceNormPooling",
    "Change2DisentangledBasis", "EMAStats", "eEMAStats", "eMultivariateNormal", "InputError",
    "eAdditivePosMultiheadAttention", "eAdditiveRelMultiheadAttention", "MLP", "eTimeCNNEncoder", "TimeCNNEncoder",
    "SinusoidalPosEmb", "eConditionalResidualBlock1D", "eConditionalUnet1D", "Conv1dBlock", "Downsample1d",
    "Upsample1d", "ConditionalResidualBlock1D", "ConditionalUnet1D",
]
