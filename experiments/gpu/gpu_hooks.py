"""A Hydra callback that records where the classifier's scoring ran, inside ``python -m diffusion_lab``.

check.sh adds it to the framework's own entry point (no wrapper script):

    PYTHONPATH=experiments/gpu python -m diffusion_lab ... +hydra.callbacks.devices._target_=gpu_hooks.DeviceSpy

Before the task runs it wraps ``diffusion_lab.classifiers.predict.score_batch`` (every readout of every model
goes through it after ``predict`` has moved the batch to ``model.device``). Each call records the device of the
module's parameters, of the batch's ``input_ids`` and of the returned scores, before ``predict`` copies them to
the CPU. At the end of the job it writes ``device_check.json`` into the run directory:
``{"calls": N, "module": [...], "inputs": [...], "scores": [...], "models": [...]}`` (the sets of device types
seen), which check.sh asserts on (``cuda`` on a GPU, ``cpu`` in the dry run).
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback


class DeviceSpy(Callback):
    def __init__(self) -> None:
        self.seen = {"module": set(), "inputs": set(), "scores": set(), "models": set()}
        self.calls = 0
        self.out: Path | None = None

    def on_job_start(self, config, **kwargs) -> None:
        from diffusion_lab.classifiers import predict as predict_module

        self.out = Path(HydraConfig.get().runtime.output_dir)
        real = predict_module.score_batch

        def spy(model, batch, *args, **kw):
            result = real(model, batch, *args, **kw)
            self.calls += 1
            self.seen["module"].add(next(model.parameters()).device.type)
            self.seen["inputs"].add(batch["input_ids"].device.type)
            self.seen["scores"].add(result[0].device.type)
            self.seen["models"].add(type(model).__name__)
            return result

        predict_module.score_batch = spy

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"calls": self.calls, **{k: sorted(v) for k, v in self.seen.items()}}
        (self.out / "device_check.json").write_text(json.dumps(record, indent=1))
