from __future__ import annotations

import pytest

from kinema.kernels.sparse3d import SparseSchedule, SparseWindow

WINDOW = SparseWindow(tile=(1, 4, 4), window=(3, 3, 3), global_frames=1)


def test_dense_early_steps_and_chosen_layers_then_sparse():
    schedule = SparseSchedule(WINDOW, dense_from_timestep=900, dense_layers=(0,))
    assert schedule(layer=3, grid=(4, 8, 8), timestep=950.0, dense_backend="sdpa") == ("sdpa", {})
    assert schedule(layer=0, grid=(4, 8, 8), timestep=500.0, dense_backend="flash") == ("flash", {})
    assert schedule(layer=3, grid=[4, 8, 8], timestep=899.9, dense_backend="sdpa") == (
        "sparse3d",
        {"grid": (4, 8, 8), "window": WINDOW},
    )


def test_default_is_sparse_everywhere():
    assert SparseSchedule(WINDOW)(layer=0, grid=(2, 4, 4), timestep=999.0, dense_backend="sdpa")[0] == "sparse3d"


def test_bad_schedules_name_the_fix():
    with pytest.raises(ValueError, match=r"dense_from_timestep must be None or in 0..1000"):
        SparseSchedule(WINDOW, dense_from_timestep=0.9e4)
    with pytest.raises(ValueError, match="dense_layers must be layer indices >= 0"):
        SparseSchedule(WINDOW, dense_layers=(-1,))
    with pytest.raises(TypeError, match="window must be a SparseWindow"):
        SparseSchedule(window=(3, 3, 3))
