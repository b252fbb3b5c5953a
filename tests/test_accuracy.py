"""The estimator, end to end, against published measurements (planner/data/measurements.csv)."""

from __future__ import annotations

import pandas as pd

from planner import accuracy


def test_it_keeps_every_measurement_sourced_and_batch_1_decode_well_covered():
    df = accuracy.load_measurements()
    assert df["source_url"].str.startswith("https://").all()
    single = df[(df["metric"] == "decode_tok_s") & (df["batch"] == 1) & (df["gpu_count"] == 1)]
    assert len(single) >= 40
    assert {"llama.cpp", "gpt-fast"} <= set(single["backend"])
    assert (single["model"] == "Mixtral-8x7B").sum() >= 5


def test_the_estimator_applies_the_shipped_fit_as_the_fit_assumed(capsys):
    # estimate() on full model shapes, under the calibration physics.fit ships: if the estimator read the fitted
    # efficiencies or fixed costs differently from the fit's own formula, these rows would drift far off.
    result = accuracy.run()
    summaries = result["summaries"]
    assert summaries["decode, batch 1, single GPU"].mape < 20.0
    assert summaries["decode, several GPUs"].mape < 25.0
    assert summaries["prefill"].mape < 30.0
    rows: pd.DataFrame = result["rows"]
    assert rows["estimate"].gt(0).all()
    accuracy.main([])
    assert "physics.fit --report" in capsys.readouterr().out
