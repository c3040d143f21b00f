"""train.precision=auto: bf16-mixed where the CPU or GPU has native bf16, fp32 elsewhere; other values pass."""

import pytest

from detr_ft.training.loop import precision
from detr_ft.training.loop.precision import cpu_bf16_flags, resolve_precision


def test_reads_the_native_bf16_flags_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\nflags : x\n")
    assert cpu_bf16_flags(cpuinfo) == ["amx_bf16", "avx512_bf16"]
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert cpu_bf16_flags(cpuinfo) == []
    assert cpu_bf16_flags(tmp_path / "absent") == []  # e.g. macOS


@pytest.mark.parametrize(("flags", "expected"), [(["amx_bf16"], "bf16-mixed"), ([], "32")])
def test_auto_on_the_cpu_follows_the_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    assert resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize("value", ["32", "bf16-mixed", "16-mixed"])
def test_explicit_values_pass_through(monkeypatch, value):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["amx_bf16"])
    assert resolve_precision(value, "cpu") == value


def test_config_accepts_auto_and_names_it_among_the_valid_values():
    from detr_ft.config.schema import TrainConfig
    from detr_ft.config.value_checks import check_train_values

    check_train_values(TrainConfig(precision="auto"))
    with pytest.raises(ValueError, match="auto"):
        check_train_values(TrainConfig(precision="fp8"))
