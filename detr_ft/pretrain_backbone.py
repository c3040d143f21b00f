"""`python -m detr_ft.pretrain_backbone [model=detr_small] [data=synthetic] [output=PATH]`

Pretrains the backbone alone on a detection dataset's own boxes (each feature-map cell learns the class of
the object covering it) and writes a torchvision-style ResNet state dict for `model.backbone.weights=PATH`:
a start for backbones nobody published. The work is detr_ft/training/loop/backbone_pretraining.py's.
"""

from omegaconf import DictConfig

from detr_ft.config.command_line import hydra_app


@hydra_app("pretrain_backbone")
def main(cfg: DictConfig) -> None:
    # Imported when the command runs: `--help` and a misspelt key's error load no torch or MLflow.
    from detr_ft.training.loop.backbone_pretraining import pretrain_backbone

    pretrain_backbone(cfg)


if __name__ == "__main__":
    main()
