"""The temporal convolutional lifter in torch (Pavllo et al. 2019, written from the paper).

State-dict names follow docs/ARCHITECTURE.md ("The lifter's files") so the numpy inference loads them directly.
One set of weights runs two ways:
- ``forward(x)``: dilated convolutions over a whole sequence (T_in = T_out + field - 1), used for evaluation;
- ``forward(x, single=True)``: one output frame per window of exactly ``field`` frames, with strided instead
  of dilated convolutions (the paper's fast training trick: same weights, ~field/3 times less compute).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TemporalLifter(nn.Module):
    """VideoPose3D-style temporal conv net (symmetric by default; ``causal=True``: each output frame is the
    last frame of its window, so it sees only the past, as the numpy inference's "causal" models).

    Parameters
    ----------
    in_joints, out_joints : joints in (2D) and out (3D)
    filter_widths : e.g. [3, 3, 3, 3] (receptive field 81)
    channels : conv width C
    dropout : dropout probability after each ReLU
    causal : residuals keep each window's last frame instead of its centre (streaming models)
    """

    def __init__(self, in_joints: int = 17, out_joints: int = 17, filter_widths=(3, 3, 3, 3),
                 channels: int = 512, dropout: float = 0.25, momentum: float = 0.1, causal: bool = False):
        super().__init__()
        self.causal = bool(causal)
        for w in filter_widths:
            if w % 2 == 0:
                raise ValueError(f"filter_widths: only odd widths are supported, got {filter_widths}")
        self.in_joints, self.out_joints = in_joints, out_joints
        self.filter_widths = list(filter_widths)
        self.channels = channels
        self.drop = nn.Dropout(dropout)
        self.expand_conv = nn.Conv1d(in_joints * 2, channels, filter_widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(channels, momentum=momentum)
        convs, bns = [], []
        for w in filter_widths[1:]:
            convs += [nn.Conv1d(channels, channels, w, bias=False), nn.Conv1d(channels, channels, 1, bias=False)]
            bns += [nn.BatchNorm1d(channels, momentum=momentum), nn.BatchNorm1d(channels, momentum=momentum)]
        self.layers_conv = nn.ModuleList(convs)
        self.layers_bn = nn.ModuleList(bns)
        self.shrink = nn.Conv1d(channels, out_joints * 3, 1)

    @property
    def receptive_field(self) -> int:
        return math.prod(self.filter_widths)

    def set_bn_momentum(self, momentum: float) -> None:
        for bn in [self.expand_bn, *self.layers_bn]:
            bn.momentum = momentum

    def forward(self, x: torch.Tensor, single: bool = False) -> torch.Tensor:
        """x (B, T_in, J_in, 2) -> (B, T_out, J_out, 3); T_out = T_in - field + 1 (single: T_in == field, T_out 1)."""
        b, t = x.shape[:2]
        if single and t != self.receptive_field:
            raise ValueError(f"single-frame mode needs {self.receptive_field} input frames, got {t}")
        h = x.reshape(b, t, -1).transpose(1, 2)
        w0 = self.filter_widths[0]
        h = F.conv1d(h, self.expand_conv.weight, stride=w0 if single else 1)
        h = self.drop(F.relu(self.expand_bn(h)))
        dilation = w0
        for i, w in enumerate(self.filter_widths[1:]):
            if single:
                res = h[:, :, (w - 1 if self.causal else w // 2)::w]
                h = F.conv1d(h, self.layers_conv[2 * i].weight, stride=w)
            else:
                span = (w - 1) * dilation
                res = h[:, :, span:] if self.causal else h[:, :, span // 2:h.shape[2] - span // 2]
                h = F.conv1d(h, self.layers_conv[2 * i].weight, dilation=dilation)
            h = self.drop(F.relu(self.layers_bn[2 * i](h)))
            h = res + self.drop(F.relu(self.layers_bn[2 * i + 1](self.layers_conv[2 * i + 1](h))))
            dilation *= w
        out = self.shrink(h)
        return out.transpose(1, 2).reshape(b, -1, self.out_joints, 3)

    def export_tensors(self) -> dict:
        """float32 numpy tensors named as in docs/ARCHITECTURE.md (no num_batches_tracked)."""
        return {k: v.detach().cpu().float().numpy().copy() for k, v in self.state_dict().items()
                if not k.endswith("num_batches_tracked")}
