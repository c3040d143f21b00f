"""load_weights on files the real peers wrote, not files made by reversing the loader's own renaming:

- Hugging Face DETR saved by `transformers` itself (save_pretrained), with the timm ResNet backbone and with
  Hugging Face's native ResNet (basic and bottleneck blocks): every tensor loads, and our model then predicts
  what DetrForObjectDetection predicts on the same padded batch;
- the official release's layout: tests/fixtures/official_detr_r50_keys.json holds the key names and shapes of
  facebookresearch/detr's own R50 model (hubconf.detr_resnet50, the model detr-r50-e632da11.pth fills), dumped
  from that repository's code; a file with exactly those keys loads into detr_r50 with every tensor in its place.
"""

import inspect
import itertools
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

from detr_ft.checkpoints.weight_loading import load_weights
from detr_ft.config.schema import config_dir
from detr_ft.model import DETR, Backbone, Transformer

OFFICIAL_R50_KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "official_detr_r50_keys.json"

# A small DETR on both sides: width 32, 4 heads, 1 encoder and 2 decoder layers, FFN 64, 5 queries, 3 classes.
NUM_CLASSES, NUM_QUERIES = 3, 5
HF_SIZES = dict(
    d_model=32,
    encoder_layers=1,
    decoder_layers=2,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    encoder_ffn_dim=64,
    decoder_ffn_dim=64,
    num_queries=NUM_QUERIES,
    num_labels=NUM_CLASSES,  # + 1 no-object output, as our num_classes
    dropout=0.0,
    use_pretrained_backbone=False,  # random init, never a download (transformers 4.x defaulted to True)
)


def _hf_resnet(layer_type: str, hidden_sizes: list[int]) -> ResNetConfig:
    # Defaults as torchvision's: 7x7 stem of 64 channels, stride in the 3x3 convolution, none in the first stage.
    return ResNetConfig(layer_type=layer_type, depths=[1, 1, 1, 1], hidden_sizes=hidden_sizes, out_features=["stage4"])


# variant -> (DetrConfig backbone arguments, our Backbone arguments)
BACKBONES = {
    "timm_resnet18": (lambda: dict(use_timm_backbone=True, backbone="resnet18"), dict(name="resnet18")),
    "hf_resnet_basic": (
        lambda: dict(use_timm_backbone=False, backbone=None, backbone_config=_hf_resnet("basic", [64, 128, 256, 512])),
        dict(name="resnet18", blocks_per_stage=[1, 1, 1, 1]),
    ),
    "hf_resnet_bottleneck": (  # also a first-stage shortcut (64 -> 256 channels) and conv3/bn3
        lambda: dict(
            use_timm_backbone=False, backbone=None, backbone_config=_hf_resnet("bottleneck", [256, 512, 1024, 2048])
        ),
        dict(name="resnet50", blocks_per_stage=[1, 1, 1, 1]),
    ),
}


def _hf_detr(variant: str) -> DetrForObjectDetection:
    torch.manual_seed(0)
    model = DetrForObjectDetection(DetrConfig(**BACKBONES[variant][0](), **HF_SIZES)).eval()
    # Make every tensor distinct and the outputs sensitive to each: constant initialisations (LayerNorm 1 and 0,
    # zero biases, frozen BatchNorm's 1/0/0/1) would let a mapping that swaps two of them go unnoticed, and
    # Hugging Face's small normal init (std 0.02) leaves the object queries nearly alike. So, as DETR starts:
    # Xavier matrices in the transformer and heads, N(0, 1) queries; the backbone keeps its init, plus noise.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif "query_position_embeddings" in name:
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
            elif tensor.dim() > 1 and ".backbone." not in name:
                torch.nn.init.xavier_uniform_(tensor, generator=generator)
            else:
                scale = tensor.std() if tensor.numel() > 1 and tensor.std() > 0 else 1.0
                tensor.add_(0.1 * scale * torch.randn(tensor.shape, generator=generator))
    return model


def _our_detr(variant: str) -> DETR:
    torch.manual_seed(2)
    backbone = Backbone(trainable_stages=["layer2", "layer3", "layer4"], last_stage="layer4", **BACKBONES[variant][1])
    transformer = Transformer(32, 4, 1, 2, 64, dropout=0.0)  # post-norm, as Hugging Face's DETR
    return DETR(backbone, transformer, num_classes=NUM_CLASSES, num_queries=NUM_QUERIES).eval()


def _hf_files(model: DetrForObjectDetection, folder: Path) -> list[Path]:
    """model.safetensors, and pytorch_model.bin where this transformers still writes it (5.x writes only
    safetensors and no longer takes safe_serialization)."""
    model.save_pretrained(folder / "safetensors")
    files = [folder / "safetensors" / "model.safetensors"]
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        model.save_pretrained(folder / "bin", safe_serialization=False)
        if (folder / "bin" / "pytorch_model.bin").is_file():
            files.append(folder / "bin" / "pytorch_model.bin")
    return files


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two images, the second 64x80 padded with zeros to 96x128; pixel_mask as Hugging Face's (1 = real pixel)."""
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(2, 3, 96, 128, generator=generator)
    pixel_mask = torch.ones(2, 96, 128, dtype=torch.long)
    pixel_mask[1, 64:, :] = 0
    pixel_mask[1, :, 80:] = 0
    images[1][:, pixel_mask[1] == 0] = 0
    return images, pixel_mask


@pytest.mark.parametrize("variant", sorted(BACKBONES))
def test_huggingface_file_written_by_transformers_loads_and_predicts_as_transformers(variant, tmp_path):
    hf = _hf_detr(variant)
    images, pixel_mask = _padded_batch()
    with torch.no_grad():
        expected = hf(pixel_values=images, pixel_mask=pixel_mask)
    for path in _hf_files(hf, tmp_path):
        ours = _our_detr(variant)
        report = load_weights(ours, path)
        assert report.source_format == "huggingface"
        assert not report.missing and not report.unexpected and not report.reinitialized, report.summary()
        assert set(report.loaded) == set(ours.state_dict())
        with torch.no_grad():
            out = ours(images, pixel_mask == 0)  # our mask: True on padding
            unmasked = ours(images)
        assert (out["pred_logits"] - expected.logits).abs().max() <= 1e-4, path.name
        assert (out["pred_boxes"] - expected.pred_boxes).abs().max() <= 1e-4, path.name
    # The comparison is sharp: the queries predict differently, and the padded image's predictions depend on its
    # mask (so the mask's handling is compared too), both by far more than the tolerance.
    assert expected.logits.std(dim=1).min() > 1e-3
    assert (unmasked["pred_logits"][1] - out["pred_logits"][1]).abs().max() > 1e-2


def _official_to_ours(key: str) -> str:
    """The correspondence of the two layouts, written from the official repository's module names: its
    backbone is Joiner(Backbone, position)[0].body, its heads class_embed and bbox_embed; all else is ours."""
    for theirs, ours in [
        ("backbone.0.body.", "backbone.body."),
        ("class_embed.", "class_head."),
        ("bbox_embed.", "box_head."),
    ]:
        if key.startswith(theirs):
            return ours + key.removeprefix(theirs)
    return key


def _detr_r50() -> DETR:
    """detr_ft's detr_r50 as the config builds it, with a random backbone (no download)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["model=detr_r50", "model.backbone.weights=null"])
    GlobalHydra.instance().clear()
    return instantiate(cfg.model, num_classes=91)


def test_official_r50_layout_loads_every_tensor_into_detr_r50(tmp_path):
    layout = json.loads(OFFICIAL_R50_KEYS.read_text())
    assert len(layout["keys"]) == layout["num_tensors"] == 458
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in layout["keys"].items():
        value = torch.randn(shape, generator=generator)
        state[key] = value.abs() + 0.5 if key.endswith("running_var") else value
    path = tmp_path / "detr-r50.pth"
    torch.save({"model": state}, path)  # as the release: {"model": state_dict}

    model = _detr_r50()
    report = load_weights(model, path)

    assert report.source_format == "official"
    assert not report.missing and not report.unexpected and not report.reinitialized, report.summary()
    ours = model.state_dict()
    assert len(report.loaded) == len(ours) == 458
    for key, value in state.items():
        assert torch.equal(ours[_official_to_ours(key)], value), key
    renamed = {
        "class_embed.weight": "class_head.weight",  # 92 rows: 91 COCO category ids + no object
        "class_embed.bias": "class_head.bias",
        "backbone.0.body.layer1.0.conv1.weight": "backbone.body.layer1.0.conv1.weight",
        "backbone.0.body.layer1.0.downsample.1.running_var": "backbone.body.layer1.0.downsample.1.running_var",
        "backbone.0.body.layer4.2.bn3.weight": "backbone.body.layer4.2.bn3.weight",
        "bbox_embed.layers.2.bias": "box_head.layers.2.bias",
    }
    kept = [
        "transformer.encoder.layers.0.self_attn.in_proj_weight",
        "transformer.decoder.layers.5.multihead_attn.in_proj_bias",
        "transformer.decoder.norm.weight",
        "query_embed.weight",
        "input_proj.weight",
    ]
    for theirs, name in [*renamed.items(), *zip(kept, kept, strict=True)]:
        assert torch.equal(ours[name], state[theirs]), theirs
    assert model.class_head.weight.shape == (92, 256) and model.query_embed.weight.shape == (100, 256)
