"""The DETR backbone: a torchvision ResNet with frozen BatchNorm statistics.

Which stages may ever train is a model setting (`trainable_stages`; DETR trains layer2-4 and keeps the
stem and layer1 fixed); which of them train now is the fine-tuning strategy's (`freeze`/`unfreeze`).
Frozen stages run without building an autograd graph, so no activations are kept for backward."""

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.ops.misc import FrozenBatchNorm2d

from detr_ft.checkpoints.safe_read import read_weights_file

log = logging.getLogger(__name__)

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
_DEPTHS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
}


def stages_through(last_stage: str) -> tuple[str, ...]:
    """The stages a backbone cut after `last_stage` has, stem first."""
    return STAGES[: STAGES.index(last_stage) + 1]


class Backbone(nn.Module):
    """ResNet feature extractor.

    Args:
        name: resnet18 | resnet34 | resnet50 | resnet101.
        trainable_stages: stages that may ever train (the others never get gradients).
        weights: None (random init), "imagenet" (torchvision's weights, downloaded) or a local file with a
            torchvision ResNet state dict (for offline machines).
        dilation: replace layer4's stride by dilation (DETR's DC5 variant; Bottleneck ResNets only).
        blocks_per_stage: override the depth, e.g. [1, 1, 1, 1] for a small, fast CPU backbone.
        last_stage: "layer4" (stride 32) or "layer3" (stride 16: finer features for small images).
        norm: "frozen" (DETR: BatchNorm statistics and affine fixed) or "batch" (trainable BatchNorm, for
            pretraining a randomly initialised backbone: without normalisation it trains poorly; its
            statistics load into a frozen-norm model for fine-tuning).
        zero_padding: zero the padded area after every stage. The paper's backbone (False) lets padding
            leak into border features through the convolutions, so an image's predictions depend slightly
            on the batch it is padded in; True makes them independent of it (not the official behaviour,
            so keep False for the official checkpoints).
    """

    def __init__(
        self,
        name: str = "resnet50",
        trainable_stages: tuple[str, ...] | list[str] = ("layer2", "layer3", "layer4"),
        weights: str | None = None,
        dilation: bool = False,
        blocks_per_stage: list[int] | None = None,
        last_stage: str = "layer4",
        zero_padding: bool = False,
        norm: str = "frozen",
    ):
        super().__init__()
        if name not in _DEPTHS:
            raise ValueError(f"model.backbone.name must be one of {sorted(_DEPTHS)}, got {name!r}")
        if last_stage not in ("layer3", "layer4"):
            raise ValueError(f"model.backbone.last_stage must be layer3 or layer4, got {last_stage!r}")
        self.stages = stages_through(last_stage)
        unknown = sorted(set(trainable_stages) - set(self.stages))
        if unknown:
            raise ValueError(f"model.backbone.trainable_stages has {unknown}; valid stages are {list(self.stages)}")
        block, depths = _DEPTHS[name]
        if dilation and block is BasicBlock:
            raise ValueError(f"model.backbone.dilation needs a Bottleneck ResNet (resnet50/101), not {name}")
        if norm not in ("frozen", "batch"):
            raise ValueError(f"model.backbone.norm must be 'frozen' or 'batch', got {norm!r}")
        self.body = ResNet(
            block,
            list(blocks_per_stage or depths),
            norm_layer=FrozenBatchNorm2d if norm == "frozen" else nn.BatchNorm2d,
            replace_stride_with_dilation=[False, False, dilation],
        )
        del self.body.fc, self.body.avgpool
        if last_stage == "layer3":
            del self.body.layer4
        self.name = name
        self.zero_padding = zero_padding
        self._padding_mask: torch.Tensor | None = None  # this forward's, for the hooks below
        for module in self.body.modules():  # after every normalisation, i.e. before every next convolution
            if isinstance(module, (FrozenBatchNorm2d, nn.BatchNorm2d)):
                module.register_forward_hook(self._after_norm)
        self.num_channels = (512 if last_stage == "layer4" else 256) * block.expansion
        self.trainable_stages = [s for s in self.stages if s in trainable_stages]
        if weights is not None:
            self._load_pretrained(weights)
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.unfrozen_stages: list[str] = []
        self.unfreeze()

    def _load_pretrained(self, weights: str) -> None:
        if weights == "imagenet":
            try:
                reference = torchvision.models.get_model(self.name, weights="DEFAULT")
            except Exception as error:  # no network, proxy, corrupt cache...
                raise RuntimeError(
                    f"could not download ImageNet weights for {self.name} ({error}). Offline, set "
                    "model.backbone.weights=null (random init) or to a local torchvision state-dict file."
                ) from error
            state = reference.state_dict()
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"model.backbone.weights: {path} is not a file (or use imagenet / null)")
            state = read_weights_file(path)
        state = {
            k: v
            for k, v in state.items()
            if not k.startswith("fc.") and k.split(".")[0] in dict(self.body.named_children())
        }
        missing, _ = self.body.load_state_dict(state, strict=False)
        if missing:
            raise ValueError(f"backbone weights {weights} lack {len(missing)} keys, e.g. {missing[:3]}")

    def stage_modules(self, stage: str) -> list[nn.Module]:
        if stage == "stem":
            return [self.body.conv1, self.body.bn1]
        return [getattr(self.body, stage)]

    def stage_parameters(self, stage: str) -> list[nn.Parameter]:
        return [p for module in self.stage_modules(stage) for p in module.parameters()]

    def freeze(self) -> None:
        """No stage trains: the whole backbone runs without an autograd graph."""
        self.unfrozen_stages = []
        for stage in self.trainable_stages:
            for parameter in self.stage_parameters(stage):
                parameter.requires_grad_(False)
        self.train(self.training)

    def unfreeze(self, stages: list[str] | None = None) -> None:
        """Let `stages` (default: every trainable stage) train; others keep their state."""
        stages = list(self.trainable_stages if stages is None else stages)
        refused = sorted(set(stages) - set(self.trainable_stages))
        if refused:
            raise ValueError(f"cannot unfreeze {refused}: this backbone's trainable stages are {self.trainable_stages}")
        for stage in stages:
            for parameter in self.stage_parameters(stage):
                parameter.requires_grad_(True)
        wanted = set(self.unfrozen_stages) | set(stages)
        self.unfrozen_stages = [s for s in self.stages if s in wanted]
        self.train(self.training)

    def train(self, mode: bool = True) -> "Backbone":
        """Trainable BatchNorm (norm="batch") keeps its statistics fixed in stages that do not train now."""
        super().train(mode)
        if mode:
            for stage in self.stages:
                if stage not in self.unfrozen_stages:
                    for module in self.stage_modules(stage):
                        module.eval()
        return self

    @property
    def is_frozen(self) -> bool:
        return not self.unfrozen_stages

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, H, W], mask [B, H, W] (True = padding) -> features [B, C, h, w], mask [B, h, w]."""
        self._padding_mask = mask
        first_trained = min((self.stages.index(s) for s in self.unfrozen_stages), default=len(self.stages))
        x = images
        for index, stage in enumerate(self.stages):
            # Stages before the first trained one need no graph: nothing behind them receives gradients.
            with torch.set_grad_enabled(torch.is_grad_enabled() and index >= first_trained):
                x = self._run_stage(stage, x)
        self._padding_mask = None
        return x, downsample_mask(mask, x)

    def _after_norm(self, module, inputs, output: torch.Tensor) -> torch.Tensor:
        return self._zero_padded_area(output)  # looked up at each call: detr_ft.model.fast may override it

    def _zero_padded_area(self, output: torch.Tensor) -> torch.Tensor:
        if not self.zero_padding or self._padding_mask is None:
            return output
        return output.masked_fill(downsample_mask(self._padding_mask, output)[:, None], 0.0)

    def _run_stage(self, stage: str, x: torch.Tensor) -> torch.Tensor:
        if stage == "stem":
            # The max-pool's window reaches past the image edge too: mask its output like a normalisation's.
            return self._zero_padded_area(self.body.maxpool(self.body.relu(self.body.bn1(self.body.conv1(x)))))
        return getattr(self.body, stage)(x)


def downsample_mask(mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """The padding mask [B, H, W] at the features' resolution [B, h, w] (nearest: True = padding)."""
    return F.interpolate(mask[None].float(), size=features.shape[-2:])[0].bool()
