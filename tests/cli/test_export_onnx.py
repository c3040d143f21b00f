"""`python -m detr_ft.export format=onnx`: the graph onnxruntime runs gives the PyTorch model's logits and boxes
(max difference <= 1e-4) for batch sizes, image sizes and padding masks other than the traced ones."""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from detr_ft.data.categories import CategoryMap
from detr_ft.inference.detector import Detector
from tests.conftest import compose_config, run_cli

CATEGORY_MAP = CategoryMap.from_coco_categories([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
TRACED = 64  # the graph is traced at 64 x 96, batch 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model with random weights in a detr_ft checkpoint, exported by the command line."""
    folder = tmp_path_factory.mktemp("onnx")
    cfg = compose_config([], folder / "run", folder / "cache")
    GlobalHydra.instance().clear()
    torch.manual_seed(0)
    model = instantiate(cfg.model, num_classes=CATEGORY_MAP.num_classes)
    checkpoint = folder / "tiny.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{key}": value for key, value in model.state_dict().items()},
            "detr_ft": {"config": OmegaConf.to_yaml(cfg, resolve=True), "category_map": CATEGORY_MAP.to_dict()},
        },
        checkpoint,
    )
    command = ["-m", "detr_ft.export", f"checkpoint={checkpoint}", "format=onnx", "output=tiny.onnx"]
    result = run_cli([*command, f"image_size={TRACED}"], cwd=folder, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "wrote tiny.onnx" in result.stdout
    again = run_cli(command, cwd=folder, timeout=180)
    assert again.returncode != 0 and "overwrite=true" in again.stderr, "an existing file is never replaced"
    return folder / "tiny.onnx", Detector(checkpoint, device="cpu").model


@pytest.mark.slow
def test_the_graph_takes_any_batch_and_image_size(exported):
    path, _ = exported
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["images", "mask"]
    assert [o.name for o in graph.output] == ["pred_logits", "pred_boxes"]
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert all(d.dim_param and not d.dim_value for i, d in enumerate(dims) if i != 1 or tensor.name == "mask")


@pytest.mark.slow
@pytest.mark.parametrize("batch, height, width", [(1, 80, 48), (3, 96, 128)])
def test_onnxruntime_gives_pytorchs_logits_and_boxes_for_other_sizes_and_padding(exported, batch, height, width):
    path, model = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(batch)
    images = torch.randn(batch, 3, height, width, generator=generator)
    mask = torch.zeros(batch, height, width, dtype=torch.bool)
    mask[0, :, width * 2 // 3 :] = True  # the first image is narrower, padded on the right
    mask[-1, height // 2 :, :] = True  # the last one shorter, padded at the bottom
    with torch.no_grad():
        expected = model(images, mask)
    logits, boxes = session.run(None, {"images": images.numpy(), "mask": mask.numpy()})
    assert logits.shape == tuple(expected["pred_logits"].shape) and boxes.shape == tuple(expected["pred_boxes"].shape)
    assert np.abs(logits - expected["pred_logits"].numpy()).max() <= 1e-4
    assert np.abs(boxes - expected["pred_boxes"].numpy()).max() <= 1e-4
    unpadded, _ = session.run(None, {"images": images.numpy(), "mask": np.zeros_like(mask.numpy())})
    assert np.abs(unpadded[0] - logits[0]).max() > 1e-3, "the mask (position encoding, padding) is in the graph"


@pytest.mark.slow
def test_a_query_groups_checkpoint_exports_the_evaluation_graph(tmp_path):
    """A K > 1 checkpoint exports group 0 alone: the graph has num_queries outputs, none of the training-only
    query weights, and gives the evaluation model's logits and boxes."""
    from detr_ft.export import export_to_onnx

    cfg = compose_config(["model.query_groups=3", "model.one_to_many_queries=4"], tmp_path / "run", tmp_path / "c")
    GlobalHydra.instance().clear()
    torch.manual_seed(0)
    model = instantiate(cfg.model, num_classes=CATEGORY_MAP.num_classes)
    assert any(key.startswith("training_queries.") for key in model.state_dict())
    checkpoint = tmp_path / "groups.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{key}": value for key, value in model.state_dict().items()},
            "detr_ft": {"config": OmegaConf.to_yaml(cfg, resolve=True), "category_map": CATEGORY_MAP.to_dict()},
        },
        checkpoint,
    )
    path = export_to_onnx(str(checkpoint), str(tmp_path / "groups.onnx"), TRACED, 18, False)
    weights = {initializer.name for initializer in onnx.load(str(path)).graph.initializer}
    assert not any("training_queries" in name for name in weights)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(2, 3, TRACED, TRACED, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, TRACED, TRACED, dtype=torch.bool)
    with torch.no_grad():
        expected = model.eval()(images, mask)
    logits, boxes = session.run(None, {"images": images.numpy(), "mask": mask.numpy()})
    assert logits.shape == (2, cfg.model.num_queries, CATEGORY_MAP.num_classes + 1)
    assert np.abs(logits - expected["pred_logits"].numpy()).max() <= 1e-4
    assert np.abs(boxes - expected["pred_boxes"].numpy()).max() <= 1e-4
