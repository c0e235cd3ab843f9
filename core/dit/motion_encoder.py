"""Wan-Animate's face motion encoder: a LIA-style appearance CNN and linear motion decomposition.

One square face crop -> one motion vector (wan_models.md 10.3). Module names follow the official
checkpoint (`enc.net_app.convs`, `enc.fc`, `dec.direction`) so its tensors load as they are.
Convolutions use "equalised" weights: the stored weight times 1/sqrt(fan_in) at run time.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import Linear, cast_like
from .animate_config import AnimateConfig

_BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)  # the anti-aliasing filter in front of every down-sampling conv
_FACES_PER_PASS = 8  # the official batch size: bounds the memory of 512 x 512 activations


class EqualConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
        self.scale = 1 / math.sqrt(in_channels * kernel * kernel)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, cast_like(self.weight, x) * self.scale, stride=self.stride, padding=self.padding)


class LeakyBias(nn.Module):
    """StyleGAN's fused bias + leaky ReLU(0.2), times sqrt(2) to keep the variance."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.empty(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + cast_like(self.bias, x), 0.2) * math.sqrt(2)


class Blur(nn.Module):
    """Depthwise [1, 3, 3, 1]^2 / 64 filter with `pad` zeros on every side (no weights: a fixed filter)."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C, H + 2 pad - 3, ...]
        taps = torch.tensor(_BLUR_TAPS, dtype=x.dtype, device=x.device)
        kernel = torch.outer(taps, taps) / taps.sum() ** 2  # [4, 4]
        kernel = kernel.expand(x.shape[1], 1, -1, -1)
        return F.conv2d(F.pad(x, (self.pad,) * 4), kernel, groups=x.shape[1])


class ResBlock(nn.Module):
    """3x3 conv, blurred stride-2 3x3 conv, plus a blurred stride-2 1x1 skip; halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Sequential(EqualConv2d(in_channels, in_channels, 3, padding=1), LeakyBias(in_channels))
        # Blur padding ((taps - stride) + (kernel - 1)) / 2 per side keeps the stride-2 grid centred.
        self.conv2 = nn.Sequential(Blur(2), EqualConv2d(in_channels, out_channels, 3, stride=2), LeakyBias(out_channels))
        self.skip = nn.Sequential(Blur(1), EqualConv2d(in_channels, out_channels, 1, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class AppearanceNet(nn.Module):
    def __init__(self, a: AnimateConfig):
        super().__init__()
        widths = a.motion_channels
        layers: list[nn.Module] = [nn.Sequential(EqualConv2d(3, widths[0], 1), LeakyBias(widths[0]))]
        layers += [ResBlock(cin, cout) for cin, cout in zip(widths[:-1], widths[1:])]
        layers.append(EqualConv2d(widths[-1], a.style_dim, a.final_kernel))  # 4x4 map -> one vector
        self.convs = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 3, S, S] -> [N, style_dim]
        for layer in self.convs:
            x = layer(x)
        return x.flatten(1)


class EqualLinear(Linear):
    """Linear with the equalised weight scale applied to the input (W (s x) + b = (s W) x + b), so
    stored low-precision or scaled-fp8 weights go through the shared Linear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x * (1 / math.sqrt(self.in_features)))


class Encoder(nn.Module):
    def __init__(self, a: AnimateConfig):
        super().__init__()
        self.net_app = AppearanceNet(a)
        # No activations between these linears (as trained).
        self.fc = nn.ModuleList(
            EqualLinear(a.style_dim, a.motion_dim if i == a.motion_layers - 1 else a.style_dim)
            for i in range(a.motion_layers)
        )

    def forward(self, faces: torch.Tensor) -> torch.Tensor:  # [N, 3, S, S] -> [N, motion_dim] coefficients
        x = self.net_app(faces)
        for layer in self.fc:
            x = layer(x)
        return x


class Direction(nn.Module):
    def __init__(self, a: AnimateConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(a.motion_out_dim, a.motion_dim))


class Decoder(nn.Module):
    def __init__(self, a: AnimateConfig):
        super().__init__()
        self.direction = Direction(a)

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:  # [N, motion_dim] -> [N, motion_out_dim]
        # The learned directions are orthonormalised (QR in float32, as official, with its +1e-8 on
        # every element); the motion vector is their combination with the encoder's coefficients.
        basis = torch.linalg.qr(self.direction.weight.float() + 1e-8)[0]  # [out, motion_dim]
        return alpha.float() @ basis.T


class MotionEncoder(nn.Module):
    def __init__(self, a: AnimateConfig):
        super().__init__()
        self.face_size = a.face_size
        self.enc = Encoder(a)
        self.dec = Decoder(a)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:  # [N, 3, S, S] in [-1, 1] -> [N, out] float32
        if faces.shape[-2:] != (self.face_size, self.face_size):
            raise ValueError(f"face crops are {tuple(faces.shape[-2:])} pixels; this Animate model takes "
                             f"{self.face_size} x {self.face_size} (resize the face video)")
        return torch.cat([self.dec(self.enc(chunk)) for chunk in faces.split(_FACES_PER_PASS)])
