"""`make run ARGS="finetune_strategy=..."`: the quickstart leaves the strategy's own keys to the preset, so a
strategy chosen on the command line takes effect (it once pinned the unfreeze epoch, and `frozen` still unfroze)."""

import pytest
from hydra.core.global_hydra import GlobalHydra

from tests.conftest import compose_config


@pytest.mark.parametrize(
    "strategy, freeze, unfreeze_at",
    [("progressive", True, 5), ("frozen", True, -1), ("full", False, -1)],
)
def test_a_strategy_on_the_command_line_wins_over_the_quickstart(tmp_path, strategy, freeze, unfreeze_at):
    cfg = compose_config(["experiment=quickstart", f"finetune_strategy={strategy}"], tmp_path / "run", tmp_path / "c")
    GlobalHydra.instance().clear()
    assert (cfg.train.freeze_backbone, cfg.train.unfreeze_backbone_at_epoch) == (freeze, unfreeze_at)
